"""Sets matched by their images, metrics on the shared images only, and the disagreements."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from negprompt import matching as X
from negprompt.metrics import ood_metrics


def table(rows, rng, column="m/s"):
    frame = pd.DataFrame(rows, columns=["dataset", "split", "path"])
    frame[column] = rng.normal(size=len(frame)) + (frame["split"] == "id") * 2
    return frame


def runs():
    rng = np.random.default_rng(0)
    ids = [("id-test", "id", f"/d/id/{i}.png") for i in range(30)]
    near = [("near", "ood", f"/d/near/{i}.png") for i in range(20)]
    far = [("far", "ood", f"/d/far/{i}.png") for i in range(20)]
    hard = [("hard", "ood", f"/d/hard/{i}.png") for i in range(10)]
    # B calls the near set "near-ood", keeps half of far, and has a set A lacks
    a = table(ids + near + far, rng)
    b_rows = [("ID", "id", p) for _, _, p in ids] + [("near-ood", "ood", p) for _, _, p in near[::-1]]
    b = table(b_rows + far[:10] + hard, rng)
    return a, b


def test_sets_are_matched_by_their_images_not_their_names():
    a, b = runs()
    match = X.match_sets(a, b, X.path_keys(a), X.path_keys(b))
    assert match.id_pair == ("id-test", "ID")
    assert match.pairs == {"near": ("near", "near-ood"), "far": ("far", "far")}
    rel = dict(
        zip(
            match.table["set A"].where(match.table["set A"] != "", match.table["set B"]),
            match.table["relation"],
        )
    )
    assert rel == {
        "id-test": "same images",
        "near": "same images",
        "far": "partly shared",
        "hard": "only in B",
    }
    assert any(d.startswith("far / far (partly shared: 10 of 20 and 10)") for d in match.differing)
    assert "hard (only in B)" in match.differing


def test_shared_metrics_use_the_same_images_in_the_same_order():
    a, b = runs()
    ka, kb = X.path_keys(a), X.path_keys(b)
    match = X.match_sets(a, b, ka, kb)
    result, aligned = X.shared_metrics(a, b, "m/s", "m/s", ka, kb, match)
    assert list(result["dataset"]) == ["near", "far", "mean"]
    # near: B lists its images in reverse; the aligned scores still pair image with image
    id_a, oods_a = aligned["a"]
    id_b, oods_b = aligned["b"]
    near_b = b.loc[b["dataset"] == "near-ood", "m/s"].to_numpy()[::-1]
    np.testing.assert_array_equal(oods_b["near"], near_b)
    assert len(oods_a["far"]) == len(oods_b["far"]) == 10  # the shared half only
    far = result.set_index("dataset").loc["far"]
    expected = ood_metrics(id_a, a.loc[a["dataset"] == "far", "m/s"].to_numpy()[:10])
    assert far["auroc A"] == pytest.approx(expected["auroc"]) and far["shared OOD images"] == 10
    mean = result.set_index("dataset").loc["mean"]
    assert mean["fpr95 Δ"] == pytest.approx(np.mean(result["fpr95 Δ"][:2]))
    # a run compared with itself: every difference is zero
    same, _ = X.shared_metrics(a, a, "m/s", "m/s", ka, ka, X.match_sets(a, a, ka, ka))
    assert (same[[c for c in same.columns if c.endswith("Δ")]] == 0).all().all()


def test_content_keys_match_copies_in_other_folders(tmp_path):
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.png").write_bytes(b"same bytes")
        (tmp_path / folder / "y.png").write_bytes(folder.encode())
    a = pd.DataFrame({"path": [str(tmp_path / "one" / n) for n in ("x.png", "y.png", "gone.png")]})
    b = pd.DataFrame({"path": [str(tmp_path / "two" / n) for n in ("x.png", "y.png")]})
    ka, kb = X.content_keys(a), X.content_keys(b)
    assert ka[0] == kb[0] and ka[1] != kb[1] and ka[2].startswith("missing:")
    assert not set(X.path_keys(a)) & set(X.path_keys(b))


def test_disagreements_each_at_its_own_threshold():
    a, b = runs()
    ka, kb = X.path_keys(a), X.path_keys(b)
    out = X.disagreements(a, b, "m/s", "m/s", 1.0, 0.0, ka, kb)
    for r in out.itertuples():
        sa, sb = a["m/s"].iat[r[1]], b["m/s"].iat[r[2]]
        assert ka[r[1]] == kb[r[2]]
        assert (sa >= 1.0) != (sb >= 0.0)
        assert r[7] == ("A" if sa >= 1.0 else "B")
    shared = set(ka) & set(kb)
    va = dict(zip(ka, a["m/s"]))
    vb = dict(zip(kb, b["m/s"]))
    assert len(out) == sum((va[k] >= 1.0) != (vb[k] >= 0.0) for k in shared)
    assert out["margin"].is_monotonic_decreasing
