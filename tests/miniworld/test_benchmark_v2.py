"""Mini-world v2 as experiment data: the set plan, the image folders and the presets on them."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from negprompt.experiments import ExperimentConfig
from negprompt.experiments.data import load_data
from negprompt.miniworld import artists as A
from negprompt.miniworld import benchmark_v2 as B
from negprompt.miniworld import splits as S


def test_plan_meets_the_sizes_and_keeps_id_and_ood_apart():
    from negprompt.experiments import config

    split = S.published()
    assert config.MINI2_PROTOCOLS == B.PROTOCOLS == tuple(split["hard_ood"])  # spelled out in three places
    plan = B.plan(split)

    def size(folder):
        names, artists, k, _ = plan[folder]
        return len(names) * len(artists) * k

    assert size("id") >= B.MIN_ID and size("covariate") >= B.MIN_ID // 2
    assert all(size(f) >= B.MIN_OOD for f in ("near-ood", "far-ood"))
    assert B.N_TEXTURES >= B.MIN_OOD
    ids, near, far = (set(plan[f][0]) for f in ("id", "near-ood", "far-ood"))
    assert len(ids) >= 100 and not ids & near and not ids & far and not near & far
    # the held-out artist draws the covariate set only; training and test pictures are different parts
    assert split["covariate_artist"] not in plan["id"][1] and plan["covariate"][1] == [
        split["covariate_artist"]
    ]
    assert plan["train"][3] == "fewshot" and {plan[f][3] for f in plan if f != "train"} == {"test"}
    # an OOD picture differs from an ID one by its concept, never by its style (no style shortcut)
    assert all(plan[f][1] == plan["id"][1] for f in plan if f != "covariate")
    assert set(plan["train"][0]) >= ids
    for name, p in split["hard_ood"].items():
        names, artists, k, _ = plan[f"hard/{name}"]
        assert len(p["id"]) * len(artists) * k >= B.MIN_ID and len(p["ood"]) * len(artists) * k >= B.MIN_OOD
        assert set(p["id"]) <= set(plan["train"][0]) and not set(p["id"]) & set(p["ood"])


def test_clothing_set_leaves_out_what_an_id_concept_is_a_kind_of():
    """A running shirt is a shirt and a handbag a bag: those Fashion-MNIST classes would be ID by
    meaning, so the clothing OOD set leaves them out and draws as many of every other class."""
    import hashlib

    import numpy as np

    from negprompt.miniworld import concepts as C
    from negprompt.miniworld.world import clothing

    split = S.published()
    kept = B.clothing_classes(split)
    assert [c for c in C.CLOTHING if c not in kept] == ["t-shirt", "shirt", "bag"]
    assert "coat" not in B.clothing_classes({**split, "id": [*split["id"], "lab coat"]})
    labels = clothing("test").labels
    rows = B.clothing_rows(labels, split)
    counts = np.bincount(labels[rows], minlength=len(C.CLOTHING))
    assert len(rows) >= B.MIN_OOD and len(set(rows)) == len(rows)
    assert [int(counts[C.CLOTHING.index(c)]) for c in kept] == [len(rows) // len(kept)] * len(kept)
    assert counts.sum() == counts[[C.CLOTHING.index(c) for c in kept]].sum()
    # the pictures drawn are pinned together with the layout version: a folder written under an
    # older rule is recognised as such only when a change of rule also changes the version
    digest = hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest()[:12]
    assert (B.LAYOUT_VERSION, digest) == ("mini2-layout/3", "7e118a49c138"), "changed? bump LAYOUT_VERSION"
    assert B.LAYOUT_VERSION in B.source_key(split) and ",".join(kept) in B.source_key(split)


PINNED_PICTURES = {
    "train": "51facefd13b0c1",
    "id": "f90e90f1d37b96",
    "near-ood": "c98f7da474dae1",
    "far-ood": "c2d0de075bb7d6",
    "hard/P1": "f3b573c94c7ce9",
}


def test_pictures_are_pinned_with_the_layout_version():
    """The first pictures of each Debian-drawn folder, to the byte: a change of drawing, rendering,
    augmentation, Pillow or Debian's fonts that changes pixels must come with a new LAYOUT_VERSION,
    or folders written before it would still count as current while a new installation draws others.
    (Twemoji's pictures come from a checksummed npm tarball; the test leaves them out so that it needs
    no download.)"""
    import hashlib

    from negprompt.miniworld import world_v2 as W2
    from negprompt.miniworld.emoji import load_hierarchy

    h = load_hierarchy()
    seen = {}
    for folder, (names, artists, _, part) in B.plan(S.published()).items():
        if folder not in PINNED_PICTURES:
            continue
        pairs = W2.drawn_pairs([h.by_name[n] for n in names[:2]], [a for a in artists if a != "twemoji"])
        images = W2.pictures(folder, pairs, 2, part, h, None, workers=1).images
        seen[folder] = hashlib.sha256(images.tobytes()).hexdigest()[:14]
    assert (B.LAYOUT_VERSION, seen) == ("mini2-layout/3", PINNED_PICTURES), "changed? bump LAYOUT_VERSION"


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    """A mini2 folder with few pictures per drawing (the layout and naming of the real one): 3
    few-shot pictures per drawing, so runs on it take 2 shots and 1 validation picture per class.
    Twemoji's drawings come from npm (not downloaded in tests): Noto's, mirrored, stand in for them."""
    mp = pytest.MonkeyPatch()
    mp.setitem(A.DRAW, "twemoji", lambda concept: _mirrored(A.draw_noto(concept)))
    A._glyph.cache_clear()
    mp.setattr(B, "MIN_ID", 1)
    mp.setattr(B, "MIN_OOD", 1)
    mp.setattr(B, "FEWSHOT_PER_PAIR", 3)
    mp.setattr(B, "N_TEXTURES", 20)
    root = tmp_path_factory.mktemp("data")
    B.mini2_root(root)
    yield root
    mp.undo()
    A._glyph.cache_clear()


def _mirrored(image):
    return None if image is None else image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def test_folders_hold_the_split_and_presets_read_them(small_root):
    split = S.published()
    train, test, ood, name = B.mini2_sets(small_root)
    assert name == "mini-world v2" and list(test.class_names) == split["id"] == list(train.class_names)
    assert set(ood) == {f"mini2/{n}" for n in B.OOD_SETS}
    assert list(ood["mini2/near-ood"].class_names) == split["near_ood"]
    assert list(ood["mini2/clothing"].class_names) == B.clothing_classes(split)
    assert {p.split("/")[-2] for p in ood["mini2/clothing"].paths} == {
        n.replace(" ", "_") for n in B.clothing_classes(split)
    }
    assert len(test) == len(split["id"]) * 2 and len(train) == len(split["id"]) * 2 * 3
    assert len(B.covariate_set(small_root)) == len(split["id"])
    files = {p.split("/")[-1].split("-")[0] for p in test.paths}
    assert files == set(B.seen_artists(split))
    _, p_test, p_ood, p_name = B.mini2_sets(small_root, protocol="P2")
    assert p_name.startswith("mini-world v2 P2") and list(p_test.class_names) == split["hard_ood"]["P2"]["id"]
    assert list(next(iter(p_ood.values())).class_names) == split["hard_ood"]["P2"]["ood"]
    with pytest.raises(ValueError, match="no protocol 'P7'.*P1, P2, P3, P4"):
        B.mini2_sets(small_root, protocol="P7")
    # written once: a second call reuses the folder
    before = (small_root / "mini2" / "MANIFEST.json").stat().st_mtime_ns
    B.mini2_root(small_root)
    assert (small_root / "mini2" / "MANIFEST.json").stat().st_mtime_ns == before


def test_presets_run_on_v2_with_its_benchmarks(small_root):
    conv = ExperimentConfig.for_preset(
        "mini-conventional", data_root=str(small_root), benchmark="mini2", shots=2, val_per_class=1
    )
    assert (conv.backbone.model, conv.backbone.pretrained) == ("negprompt-mini2", "miniworld-v2")  # v2's own
    assert ExperimentConfig.for_preset("mini-conventional").data.benchmark == "mini2"  # v2 is the default
    given = ExperimentConfig.for_preset("mini-conventional", benchmark="mini2", pretrained="none")
    assert given.backbone.pretrained == "none"
    data = load_data(conv)
    assert data.benchmark == "mini-world v2" and len(data.class_names) == len(S.published()["id"])
    hard = ExperimentConfig.for_preset(
        "mini-hard-ood",
        data_root=str(small_root),
        benchmark="mini2-hard",
        protocol="P4",
        shots=2,
        val_per_class=1,
    )
    hard.validate()
    data = load_data(hard)
    assert data.class_names == S.published()["hard_ood"]["P4"]["id"]
    with pytest.raises(ValueError, match="must be one of P1, P2, P3, P4"):
        ExperimentConfig.for_preset("mini-hard-ood", benchmark="mini2-hard", protocol="P9").validate()
    assert ExperimentConfig.for_preset("mini-hard-ood", benchmark="mini2-hard").data.protocol == "P1"
    v1_hard = ExperimentConfig.for_preset("mini-hard-ood", benchmark="mini-hard")
    assert v1_hard.data.protocol is None and v1_hard.backbone.pretrained == "auto"
    v1_hard.validate()
    ov = ExperimentConfig.for_preset(
        "mini-open-vocab",
        data_root=str(small_root),
        benchmark="mini2",
        open_vocab_fraction=0.2,
        shots=2,
        val_per_class=1,
    )
    data = load_data(ov)
    assert [data.class_names[i] for i in data.train_classes] == S.published()["open_vocab"]["20%"]
    with pytest.raises(ValueError, match="10%, 20%, 50%.*not 30%"):
        load_data(ov.replace(open_vocab_fraction=0.3))
    assert ExperimentConfig.for_preset("mini-open-vocab", benchmark="mini2").data.open_vocab_fraction == 0.1
    v1_ov = ExperimentConfig.for_preset("mini-open-vocab", benchmark="mini")
    assert (v1_ov.data.open_vocab_fraction, v1_ov.data.open_vocab_mode) == (0.5, "first")
    with pytest.raises(ValueError, match="published open-vocabulary lists"):
        load_data(v1_ov.replace(open_vocab_mode="published", data_root=str(small_root)))


def test_a_v2_run_reports_accuracy_under_covariate_shift(small_root, tmp_path):
    """The held-out artist's pictures of the ID concepts are scored for accuracy, never as OOD."""
    import json

    import numpy as np

    from negprompt.experiments import Experiment

    config = ExperimentConfig.for_preset(
        "mini-conventional", data_root=str(small_root), benchmark="mini2", model="negprompt-tiny",
        pretrained="none", shots=2, val_per_class=1, epochs=1, train_batch_size=16, neglabel=False,
        locoop=False, classes=12, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    exp = Experiment(config)
    exp.run()
    assert (
        list(exp.data.shifted) == ["mini2/id covariate"] and len(exp.data.shifted["mini2/id covariate"]) == 12
    )
    assert "mini2/id covariate" not in set(exp.evaluation.scores["dataset"])  # not an OOD set
    acc = exp.shifted_accuracy
    assert set(acc["method"]) == {m.name for m in exp.evaluation.methods if m.adapt is None}
    # against a plain recount: each method's class is the positive prompt nearest to the image
    feats = exp.features.shifted[0].features
    x = np.asarray(feats.features, dtype=np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for m in exp.evaluation.methods:
        row = acc[acc["method"] == m.name].iloc[0]
        pred = (x @ m.pos.detach().double().numpy().T).argmax(1)
        assert row["acc"] == pytest.approx(float(np.mean(pred == np.asarray(feats.labels))))
        assert row["acc_low"] <= row["acc"] <= row["acc_high"] and row["images"] == 12
    assert "ID accuracy under covariate shift" in exp.table()
    run = exp.write(tmp_path / "run")
    record = json.loads((run / "config.json").read_text())["experiment"]
    assert {r["method"] for r in record["shifted_accuracy"]} == set(acc["method"])
    assert record["data"]["shifted"] == {"mini2/id covariate": 12}


def test_the_dashboard_shows_a_v2_run_with_its_weights_warning(small_root, tmp_path, monkeypatch):
    """A run of the mini preset's defaults on v2 (the bundled negprompt-mini2, which misses its targets):
    every view says so, the runs page shows the covariate-shift accuracy, and nothing fails."""
    from streamlit.testing.v1 import AppTest

    from negprompt.bundled import shortfall
    from negprompt.experiments import Experiment

    config = ExperimentConfig.for_preset(
        "mini-conventional", data_root=str(small_root), shots=2, val_per_class=1, epochs=1,
        train_batch_size=16, locoop=False, classes=12, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    assert (config.data.benchmark, config.backbone.model) == ("mini2", "negprompt-mini2")
    exp = Experiment(config)
    exp.run()
    exp.write(tmp_path / "runs" / "v2")
    warning = shortfall("negprompt-mini2", "miniworld-v2")
    assert warning and "miss their targets" in warning
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(tmp_path / "runs"))
    app = Path(__file__).resolve().parents[2] / "app" / "app.py"
    for page in (None, "images"):
        at = AppTest.from_file(str(app), default_timeout=180).run()
        if page:
            at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]  # real weights: no red banner
        assert any(warning in w for w in at.warning.values), page
        if page is None:
            assert "ID accuracy under covariate shift" in at.subheader.values
