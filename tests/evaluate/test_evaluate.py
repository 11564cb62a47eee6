"""negprompt.evaluate on hand-made features: the per-image table, OOD classes and the metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from negprompt import analysis, viz
from negprompt import metrics as M
from negprompt import scores as S
from negprompt.evaluate import EvalSet, Method, evaluate
from negprompt.features import CachedFeatures

D = 8


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _set(name: str, feats: np.ndarray, labels, class_names=()) -> EvalSet:
    paths = [f"{name}/{i}.png" for i in range(len(feats))]
    cached = CachedFeatures(
        feats.astype(np.float16), np.asarray(labels, dtype=np.int64), paths, {}, Path("cache")
    )
    return EvalSet(name, cached, Path("/data"), tuple(class_names))


@pytest.fixture
def sets():
    rng = np.random.default_rng(0)
    protos = _unit(rng.normal(size=(3, D)))
    id_labels = np.arange(12) % 2
    id_feats = _unit(protos[id_labels] + 0.3 * rng.normal(size=(12, D)))
    near_labels = np.array([0, 1, 1, 2, 2, 2, -1])  # classes of the OOD set itself; -1 = unlabelled
    near_feats = _unit(0.6 * protos[np.r_[0, 1, 1, 0, 0, 0, 1]] + rng.normal(size=(7, D)))
    far_feats = _unit(rng.normal(size=(5, D)))
    return (
        _set("id", id_feats, id_labels),
        [_set("near", near_feats, near_labels, ["lynx", "puma", "ocelot"]), _set("far", far_feats, [-1] * 5)],
        torch.from_numpy(protos[:2]).float(),
    )


def test_table_rows_labels_and_ood_classes(sets):
    id_set, ood_sets, pos = sets
    result = evaluate([Method("zeroshot", pos)], id_set, ood_sets, ["cat", "dog"])
    table = result.scores
    assert list(table["dataset"]) == ["id"] * 12 + ["near"] * 7 + ["far"] * 5
    assert (table["label"][12:] == -1).all() and list(table["label"][:12]) == [0, 1] * 6
    assert list(table["label_name"][:2]) == ["cat", "dog"] and (table["label_name"][12:] == "").all()
    # the OOD set's own classes, never mixed into the ID label space
    assert (
        list(table["ood_class"])
        == [""] * 12 + ["lynx", "puma", "puma", "ocelot", "ocelot", "ocelot", ""] + [""] * 5
    )
    assert table["path"][12] == str(Path("/data") / "near/0.png")


def test_scores_and_metrics_equal_the_plain_functions(sets):
    id_set, ood_sets, pos = sets
    result = evaluate([Method("zeroshot", pos)], id_set, ood_sets, ["cat", "dog"])
    feats = torch.from_numpy(result.image_features.astype(np.float32))
    expected = S.score("mcm", feats, pos).numpy()
    np.testing.assert_allclose(result.scores["zeroshot/mcm"], expected, rtol=1e-6)
    is_id = result.scores["split"].eq("id").to_numpy()
    row = result.metrics.query("score == 'mcm' and dataset == 'near'").iloc[0]
    near = result.scores["dataset"].eq("near").to_numpy()
    assert row["auroc"] == M.auroc(expected[is_id], expected[near])
    assert row["fpr95"] == M.fpr_at_tpr(expected[is_id], expected[near])


def test_ood_labels_without_all_their_names(sets):
    id_set, ood_sets, pos = sets
    nameless = _set("near", np.asarray(ood_sets[0].features.features, np.float32), [0, 1, 1, 2, 2, 2, -1])
    # no names at all: no OOD classes reported
    table = evaluate([Method("zeroshot", pos)], id_set, [nameless], ["cat", "dog"]).scores
    assert (table["ood_class"] == "").all()
    # some names, but not for every label: a clear error
    short = _set(
        "near", np.asarray(ood_sets[0].features.features, np.float32), [0, 1, 1, 2, 2, 2, -1], ["a", "b"]
    )
    with pytest.raises(ValueError, match="'near': label 2 has no class name.*class_names"):
        evaluate([Method("zeroshot", pos)], id_set, [short], ["cat", "dog"])


def test_ood_class_breakdown_counts_and_aurocs(sets):
    id_set, ood_sets, pos = sets
    table = evaluate([Method("zeroshot", pos)], id_set, ood_sets, ["cat", "dog"]).scores
    col = "zeroshot/mcm"
    threshold = viz.threshold_at_tpr(table.loc[table.split == "id", col], 0.95)
    out = viz.ood_class_breakdown(table, col, threshold)
    assert set(out["ood_class"]) == {"lynx", "puma", "ocelot"} and set(out["dataset"]) == {"near"}
    by = out.set_index("ood_class")
    id_scores = table.loc[table.split == "id", col].to_numpy()
    for name, n in [("lynx", 1), ("puma", 2), ("ocelot", 3)]:
        values = table.loc[table.ood_class == name, col].to_numpy()
        assert by.loc[name, "images"] == n
        assert by.loc[name, "accepted"] == int((values >= threshold).sum())
        assert by.loc[name, "auroc"] == pytest.approx(M.auroc(id_scores, values))
        assert by.loc[name, "mean_score"] == pytest.approx(values.mean())
    pct = out["accepted_pct"].to_numpy()
    assert (np.diff(pct) <= 0).all()  # most accepted first
    # without the column (older runs), an empty table with the documented columns
    empty = viz.ood_class_breakdown(table.drop(columns="ood_class"), col, threshold)
    assert empty.empty and tuple(empty.columns) == analysis.BREAKDOWN_COLUMNS


def test_breakdown_orders_ties_by_auroc():
    table = pd.DataFrame(
        {
            "dataset": ["id"] * 4 + ["o"] * 4,
            "split": ["id"] * 4 + ["ood"] * 4,
            "ood_class": ["", "", "", "", "a", "a", "b", "b"],
            "s": [1.0, 2.0, 3.0, 4.0, 0.5, 0.6, 2.5, 0.1],
        }
    )
    out = viz.ood_class_breakdown(table, "s", threshold=5.0)  # nothing accepted: ties on accepted_pct
    assert list(out["ood_class"]) == ["b", "a"]  # b overlaps the ID scores more (lower AUROC)
    assert list(out["auroc"]) == [pytest.approx(0.75), 1.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_breakdown_equals_a_plain_per_class_computation(seed):
    rng = np.random.default_rng(seed)
    n_id, n_ood = 200, 300
    values = np.round(rng.normal(size=n_id + n_ood), 1)  # rounded: many ties across ID and OOD
    table = pd.DataFrame(
        {
            "dataset": ["id"] * n_id + list(rng.choice(["near", "far"], n_ood)),
            "split": ["id"] * n_id + ["ood"] * n_ood,
            "ood_class": [""] * n_id + list(rng.choice(["a", "b", "c", ""], n_ood)),
            "s": values,
        }
    )
    threshold = float(np.quantile(values[:n_id], 0.05))
    out = viz.ood_class_breakdown(table, "s", threshold).set_index(["dataset", "ood_class"])
    ood = table[(table.split == "ood") & (table.ood_class != "")]
    assert len(out) == ood.groupby(["dataset", "ood_class"]).ngroups
    for (dataset, name), part in ood.groupby(["dataset", "ood_class"]):
        row = out.loc[(dataset, name)]
        assert row["images"] == len(part)
        assert row["accepted"] == int((part.s >= threshold).sum())
        assert row["auroc"] == pytest.approx(M.auroc(values[:n_id], part.s.to_numpy()), abs=1e-12)
        assert row["mean_score"] == pytest.approx(part.s.mean())


def test_hardest_ood_classes_text():
    from negprompt.commands.common import hardest_ood_classes

    table = pd.DataFrame(
        {
            "dataset": ["id"] * 20 + ["o"] * 4,
            "split": ["id"] * 20 + ["ood"] * 4,
            "ood_class": [""] * 20 + ["a", "a", "b", "b"],
            "negprompt/negprompt": list(np.arange(20.0)) + [30.0, 0.5, -1.0, -2.0],
        }
    )
    text = hardest_ood_classes(table).splitlines()
    # threshold keeps 19 of 20 ID images (score >= 1): a has one of two accepted, b none;
    # AUROC of a: ID beats 30.0 never and 0.5 in 19 of 20 pairs, so 19/40
    assert text[1] == "  a (o): 1/2 accepted as ID, AUROC 47.50" and text[2].startswith("  b (o): 0/2")
    assert hardest_ood_classes(table.drop(columns="ood_class")) == ""
    assert hardest_ood_classes(table.assign(ood_class="")) == ""
    assert hardest_ood_classes(table, column="coop/mcm") == ""
