"""Tests of negprompt.rundir: round trip, atomic writes, no overwrites, load errors, path safety, search."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from negprompt import rundir as R
from negprompt.metrics import FPR_CONVENTION, accuracy, ood_metrics
from negprompt.rundir import write as W
from negprompt.synthetic import synthetic_run

# --------------------------------------------------------------------------- hand-made parts of a run


def make_parts(tmp_path: Path, d: int = 4) -> dict:
    """The keyword arguments of a small valid `write_run` call: 3 ID + 2 OOD images, one method."""
    root = tmp_path / "data"
    files = [root / "toy" / f"{i}.png" for i in range(3)] + [root / "ood" / f"{i}.png" for i in range(2)]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"not really a png")
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(
        {
            "dataset": ["toy"] * 3 + ["NA"] * 2,  # "NA" must stay a name, not become a missing value
            "split": ["id"] * 3 + ["ood"] * 2,
            "path": [str(f) for f in files],
            "label": np.array([0, 1, 1, -1, -1], dtype=np.int64),
            "label_name": ["cat", "dog", "dog", "", ""],
            "pred.zeroshot": np.array([0, 1, 0, 1, 0], dtype=np.int64),
            "zeroshot/mcm": [0.9, 0.8, 0.7, 0.75, 0.1],
        }
    )
    metrics = pd.DataFrame(
        [
            {"method": "zeroshot", "score": "mcm", "dataset": "NA", **ood_metrics([0.9, 0.8, 0.7], [0.75, 0.1]),
             "id_acc": 2 / 3},
            {"method": "zeroshot", "score": "mcm", "dataset": "mean", "fpr95": 0.5, "auroc": float("nan"),
             "aupr_in": 1.0, "aupr_out": 0.0, "id_acc": 2 / 3},
        ]
    )  # fmt: skip
    weights, meta = tmp_path / "p.safetensors", tmp_path / "p.json"
    weights.write_bytes(b"\x00\x01weights")
    meta.write_text('{"n_ctx": 4}')
    return {
        "config": {
            "kind": "zeroshot",
            "backbone": {"name": "negprompt-tiny", "random_weights": True},
            "data": {"roots": [str(root)], "id": "toy", "ood": ["NA"], "class_names": ["cat", "dog"]},
            "experiment": {"seed": 0, "where": Path("relative/dir")},  # a Path is stored as a string
        },
        "metrics": metrics,
        "scores": scores,
        "image_features": rng.normal(size=(5, d)).astype(np.float32),
        "text_features": {
            "zeroshot.pos": rng.normal(size=(2, d)),
            "zeroshot.neg": rng.normal(size=(2, 3, d)),
        },
        "prompt_files": {"zeroshot": (weights, meta)},
        "context_tokens": {
            "zeroshot": {"positive": [[{"token": "photo", "similarity": 0.5}]], "negative": []}
        },
        "log": "line one\nline two ✓\n",
    }


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- round trip


def test_round_trip(tmp_path):
    parts = make_parts(tmp_path)
    out = R.write_run(tmp_path / "runs" / "first", **parts)
    assert out == tmp_path / "runs" / "first" and leftovers(tmp_path / "runs") == ["first"]
    run = R.load_run(out)

    cfg = run.config
    assert list(cfg)[:4] == ["format", "kind", "name", "created"]
    assert cfg["format"] == R.FORMAT_VERSION == 1 and cfg["kind"] == "zeroshot" and cfg["name"] == "first"
    assert datetime.fromisoformat(cfg["created"]).tzinfo is not None
    assert set(cfg["software"]) >= {"python", "torch", "open_clip", "numpy", "negprompt", "platform"}
    assert cfg["fpr_convention"] == FPR_CONVENTION
    assert cfg["methods"] == ["zeroshot"] and cfg["scores"] == ["mcm"]
    assert cfg["experiment"] == {"seed": 0, "where": "relative/dir"}
    assert run.name == "first" and run.path == out and run.random_weights is True
    assert run.data_roots == [tmp_path / "data"] and run.methods == ["zeroshot"]
    assert "first" in repr(run)

    pd.testing.assert_frame_equal(run.metrics, parts["metrics"])
    assert run.metrics["dataset"].tolist() == ["NA", "mean"] and np.isnan(run.metrics["auroc"][1])
    pd.testing.assert_frame_equal(run.scores, parts["scores"])
    assert run.score_columns == ["zeroshot/mcm"]

    feats = run.image_features
    assert isinstance(feats, np.memmap) and feats.dtype == np.float16 and not feats.flags.writeable
    np.testing.assert_array_equal(feats, parts["image_features"].astype(np.float16))
    assert set(run.text_features) == {"zeroshot.pos", "zeroshot.neg"}
    pos, neg = run.text_features_of("zeroshot")
    assert pos.dtype == np.float32 and neg.shape == (2, 3, 4)
    np.testing.assert_allclose(neg, parts["text_features"]["zeroshot.neg"], rtol=1e-6)
    with pytest.raises(R.RunDirError, match="no text features of method 'coop'"):
        run.text_features_of("coop")
    assert run.context_tokens == parts["context_tokens"]
    assert run.log == parts["log"]
    weights, meta = run.prompt_files["zeroshot"]
    assert weights == out / "prompts" / "zeroshot.safetensors" and weights.read_bytes() == b"\x00\x01weights"
    assert json.loads(meta.read_text()) == {"n_ctx": 4}
    assert run.metrics is run.metrics  # cached


def test_minimal_run_has_empty_optional_parts(tmp_path):
    parts = make_parts(tmp_path)
    out = R.write_run(
        tmp_path / "min", config=parts["config"], metrics=parts["metrics"], scores=parts["scores"]
    )
    run = R.load_run(out)
    assert run.image_features is None and run.text_features == {} and run.context_tokens == {}
    assert run.prompt_files == {} and run.log == ""
    assert leftovers(out) == ["config.json", "log.txt", "metrics.csv", "scores.parquet"]


# --------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize(
    "target",
    [(np, "savez"), (W.shutil, "copyfile"), (W.os, "rename"), (pd.DataFrame, "to_parquet"), (W, "to_json")],
)
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, target):
    parts = make_parts(tmp_path)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    if target == (W, "to_json"):  # fail at the config, written last, but not the context tokens
        real = W.to_json
        monkeypatch.setattr(W, "to_json", lambda obj, what: boom() if what == "config" else real(obj, what))
    else:
        monkeypatch.setattr(*target, boom)
    with pytest.raises(RuntimeError, match="disk full"):
        R.write_run(tmp_path / "runs" / "run", **parts)
    assert leftovers(tmp_path / "runs") == []  # neither the run nor its temporary folder


@pytest.mark.parametrize("unique", [False, True])
def test_name_taken_during_the_write_is_not_replaced(tmp_path, monkeypatch, unique):
    parts = make_parts(tmp_path)
    real_rename = os.rename

    def rename_after_someone_else(src, dst):  # another writer claims the first name just before us
        if Path(dst).name == "run" and not Path(dst).exists():
            Path(dst).mkdir()
            (Path(dst) / "theirs.txt").write_text("theirs")
        return real_rename(src, dst)  # fails: the target is a non-empty folder

    monkeypatch.setattr(W.os, "rename", rename_after_someone_else)
    if unique:
        assert R.write_run(tmp_path / "runs" / "run", unique=True, **parts).name == "run-2"
        monkeypatch.undo()
        assert R.load_run(tmp_path / "runs" / "run-2").name == "run-2"
        assert leftovers(tmp_path / "runs") == ["run", "run-2"]
    else:
        with pytest.raises(R.RunExistsError):
            R.write_run(tmp_path / "runs" / "run", **parts)
        assert leftovers(tmp_path / "runs") == ["run"]
    assert leftovers(tmp_path / "runs" / "run") == ["theirs.txt"]


def test_invalid_parts_write_nothing(tmp_path):
    parts = make_parts(tmp_path)
    parts["metrics"] = parts["metrics"].drop(columns="aupr_out")
    with pytest.raises(R.RunDirError, match="aupr_out"):
        R.write_run(tmp_path / "runs" / "run", **parts)
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- never overwrite


def test_refuses_to_overwrite(tmp_path):
    parts = make_parts(tmp_path)
    first = R.write_run(tmp_path / "run", **parts)
    before = (first / "config.json").read_text()
    with pytest.raises(R.RunExistsError) as info:
        R.write_run(tmp_path / "run", **{**parts, "log": "second"})
    message = str(info.value)
    assert str(first) in message and "run-2" in message and "unique=True" in message
    assert isinstance(info.value, FileExistsError) and isinstance(info.value, R.RunDirError)
    assert (first / "config.json").read_text() == before and R.load_run(first).log == parts["log"]
    assert leftovers(tmp_path).count("run") == 1 and not any(".tmp-" in n for n in leftovers(tmp_path))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(R.RunExistsError):
        R.write_run(tmp_path / "a-file", **parts)


def test_unique_names(tmp_path):
    parts = make_parts(tmp_path)
    outs = [R.write_run(tmp_path / "runs" / "run", unique=True, **parts) for _ in range(3)]
    assert [p.name for p in outs] == ["run", "run-2", "run-3"]
    assert [R.load_run(p).name for p in outs] == ["run", "run-2", "run-3"]
    named = {**parts, "config": {**parts["config"], "name": "my experiment"}}
    assert R.load_run(R.write_run(tmp_path / "runs" / "run", unique=True, **named)).name == "my experiment"
    assert leftovers(tmp_path / "runs") == ["run", "run-2", "run-3", "run-4"]


# --------------------------------------------------------------------------- validation of the parts


def _scores(parts, **changes):
    frame = parts["scores"].copy()
    for col, value in changes.items():
        frame[col] = value
    return {"scores": frame}


BAD_PARTS = {
    "metrics column": (lambda p: {"metrics": p["metrics"].drop(columns="id_acc")}, "lacks column.*id_acc"),
    "metrics range": (lambda p: {"metrics": p["metrics"].assign(auroc=1.5)}, "'auroc' must hold fractions"),
    "metrics empty name": (lambda p: {"metrics": p["metrics"].assign(method=None)}, "'method' has empty"),
    "scores column": (lambda p: {"scores": p["scores"].drop(columns="split")}, "scores lacks.*split"),
    "split value": (lambda p: _scores(p, split=["id", "id", "test", "ood", "ood"]), "'id' or 'ood'.*test"),
    "id first": (lambda p: _scores(p, split=["id", "ood", "id", "ood", "ood"], label=[0, -1, 1, -1, -1]),
                 "ID images first"),
    "label dtype": (lambda p: _scores(p, label=[0.0, 1.0, 1.0, -1.0, -1.0]), "'label' must be integers"),
    "ood label": (lambda p: _scores(p, label=[0, 1, 1, 0, -1]), "-1 on OOD rows"),
    "ood_class on id": (lambda p: _scores(p, ood_class=["x", "", "", "y", ""]), "'ood_class' must be '' on ID"),
    "ood_class type": (lambda p: _scores(p, ood_class=["", "", "", 3, None]), "'ood_class' must hold strings"),
    "pred dtype": (lambda p: _scores(p, **{"pred.zeroshot": [0.5] * 5}), "pred.zeroshot.*integer"),
    "score name": (lambda p: _scores(p, **{"zero shot/mcm": [0.1] * 5}), "'<method>/<score>'"),
    "score dtype": (lambda p: _scores(p, **{"zeroshot/energy": ["a"] * 5}), "must be numeric"),
    "feature rows": (lambda p: {"image_features": p["image_features"][:4]}, r"N = 5 rows.*\(4, 4\)"),
    "feature nan": (lambda p: {"image_features": np.full((5, 4), np.nan)}, "NaN"),
    "text key": (lambda p: {"text_features": {"zeroshot": np.zeros((2, 4))}}, "'<method>.pos'"),
    "text ndim": (lambda p: {"text_features": {"zeroshot.pos": np.zeros((2, 1, 4))}}, r"\[C, D\]"),
    "text width": (lambda p: {"text_features": {"zeroshot.pos": np.zeros((2, 8))}}, "width 8.*width 4"),
    "neg alone": (lambda p: {"text_features": {"zeroshot.neg": np.zeros((2, 1, 4))}}, "matching '.pos'"),
    "neg classes": (lambda p: {"text_features": {"a.pos": np.zeros((2, 4)), "a.neg": np.zeros((3, 1, 4))}},
                    "same 3 classes"),
    "kind": (lambda p: {"config": {k: v for k, v in p["config"].items() if k != "kind"}}, "needs 'kind'"),
    "random_weights": (lambda p: {"config": {**p["config"], "backbone": {"random_weights": "no"}}},
                       "random_weights"),
    "roots": (lambda p: {"config": {**p["config"], "data": {"id": "toy"}}}, "'roots'"),
    "format": (lambda p: {"config": {**p["config"], "format": 2}}, "format 2.*reads format 1"),
    "methods": (lambda p: {"config": {**p["config"], "methods": ["coop"]}}, "method.*zeroshot.*missing"),
    "prompt file": (lambda p: {"prompt_files": {"coop": ("nope.safetensors", "nope.json")}}, "prompt_files"),
    "json": (lambda p: {"context_tokens": {"a": {1, 2}}}, "context_tokens cannot be written as JSON"),
    "config json": (lambda p: {"config": {**p["config"], "experiment": {"x": float("nan")}}}, "config cannot"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_PARTS))
def test_bad_parts_are_rejected(tmp_path, case):
    parts = make_parts(tmp_path)
    change, pattern = BAD_PARTS[case]
    with pytest.raises(R.RunDirError, match=pattern):
        R.write_run(tmp_path / "runs" / "run", **{**parts, **change(parts)})
    assert leftovers(tmp_path / "runs") == []


# --------------------------------------------------------------------------- damaged runs


def _damage_config(run: Path, text: str | None = None, **changes) -> None:
    cfg = json.loads((run / "config.json").read_text())
    cfg.update(changes)
    (run / "config.json").write_text(text if text is not None else json.dumps(cfg))


DAMAGE = {
    "no config": (lambda run: (run / "config.json").unlink(), "has no config.json"),
    "corrupt config": (lambda run: _damage_config(run, text='{"format": 1, "kind": '), "corrupt.*not valid JSON"),
    "config not object": (lambda run: _damage_config(run, text="[1, 2]"), "must be a JSON object"),
    "no random_weights": (lambda run: _damage_config(run, backbone={}), "random_weights"),
    "format": (lambda run: _damage_config(run, format=7), "format 7.*reads format 1"),
    "no metrics": (lambda run: (run / "metrics.csv").unlink(), "incomplete: metrics.csv is missing"),
    "no scores": (lambda run: (run / "scores.parquet").unlink(), "incomplete: scores.parquet is missing"),
    "corrupt scores": (lambda run: (run / "scores.parquet").write_bytes(b"garbage"), "scores.parquet is corrupt"),
    "misaligned": (lambda run: np.save(run / "image_features.npy", np.zeros((4, 4), np.float16)),
                   r"shape \(4, 4\).*5 rows.*align"),
    "corrupt features": (lambda run: (run / "image_features.npy").write_bytes(b"xx"), "image_features.npy is corrupt"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_runs_fail_to_load_with_clear_errors(tmp_path, case):
    run = R.write_run(tmp_path / "run", **make_parts(tmp_path))
    damage, pattern = DAMAGE[case]
    damage(run)
    with pytest.raises(R.RunDirError, match=pattern):
        R.load_run(run)


def test_missing_folder_and_damaged_parts_on_access(tmp_path):
    with pytest.raises(R.RunDirError, match="no run directory at"):
        R.load_run(tmp_path / "nowhere")
    run_dir = R.write_run(tmp_path / "run", **make_parts(tmp_path))
    (run_dir / "metrics.csv").write_text("method,score\nzeroshot,mcm\n")
    (run_dir / "context_tokens.json").write_text("{oops")
    (run_dir / "text_features.npz").write_bytes(b"not a zip")
    run = R.load_run(run_dir)  # opening is cheap: these parts are read on access
    with pytest.raises(R.RunDirError, match="metrics.csv lacks column"):
        _ = run.metrics
    with pytest.raises(R.RunDirError, match="context_tokens.json is corrupt"):
        _ = run.context_tokens
    with pytest.raises(R.RunDirError, match="text_features.npz is corrupt"):
        _ = run.text_features


# --------------------------------------------------------------------------- image paths


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return synthetic_run(
        tmp_path_factory.mktemp("synthetic") / "runs" / "demo", n_id=24, ood_sets={"near": 8, "far": 8}
    )


def test_resolve_image_path_accepts_the_run_images(synthetic):
    run = R.load_run(synthetic)
    root = run.data_roots[0]
    for p in run.scores["path"]:
        assert R.resolve_image_path(run, p) == Path(p).resolve()
    first = Path(run.scores["path"][0])
    assert R.resolve_image_path(run, first.relative_to(root)) == first  # relative to a root
    assert R.resolve_image_path(synthetic, str(first)) == first  # a run path works too
    assert R.resolve_image_path(run, root / "far" / ".." / first.relative_to(root)) == first  # ".." inside


def test_resolve_image_path_rejects_escapes(synthetic, tmp_path):
    run = R.load_run(synthetic)
    root = run.data_roots[0]
    secret = root.parent / "secret.png"
    secret.write_bytes(b"secret")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"outside")
    (root / "link.png").symlink_to(outside)
    (root / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    for bad in [
        root / ".." / "secret.png",
        str(root) + "/../secret.png",
        "../secret.png",
        "far/../../secret.png",
        outside,
        root / "link.png",  # a symlink inside the root pointing outside
        root / "linkdir" / "outside.png",
        "/etc/passwd",
    ]:
        with pytest.raises(R.RunDirError, match="outside the data roots"):
            R.resolve_image_path(run, bad)
    with pytest.raises(R.RunDirError, match="no image file"):
        R.resolve_image_path(run, root / "far" / "missing.png")


def test_resolve_image_path_through_a_symlinked_root_and_without_roots(tmp_path):
    parts = make_parts(tmp_path)
    (tmp_path / "alias").symlink_to(tmp_path / "data", target_is_directory=True)
    parts["config"]["data"]["roots"] = [str(tmp_path / "alias")]
    run = R.load_run(R.write_run(tmp_path / "run", **parts))
    assert (
        R.resolve_image_path(run, tmp_path / "alias" / "toy" / "0.png") == tmp_path / "data" / "toy" / "0.png"
    )
    assert (
        R.resolve_image_path(run, tmp_path / "data" / "toy" / "1.png") == tmp_path / "data" / "toy" / "1.png"
    )
    parts["config"]["data"]["roots"] = []
    empty = R.load_run(R.write_run(tmp_path / "run-noroots", **parts))
    with pytest.raises(R.RunDirError, match="no data roots"):
        R.resolve_image_path(empty, tmp_path / "data" / "toy" / "0.png")


# --------------------------------------------------------------------------- finding runs


def test_find_runs(tmp_path):
    parts = make_parts(tmp_path)
    root = tmp_path / "runs"
    made = {}
    for i, rel in enumerate(["a", "b/c", "x/y/z", "p/q/r/s", "b/d"]):
        cfg = {**parts["config"], "created": f"2025-01-0{i + 1}T12:00:00+00:00"}
        made[rel] = R.write_run(root / rel, **{**parts, "config": cfg})
    hidden = root / ".e.tmp-1234"  # an unfinished write
    hidden.mkdir()
    (hidden / "config.json").write_text("{}")
    (made["a"] / "prompts" / "nested").mkdir()  # never descend into a run
    (made["a"] / "prompts" / "nested" / "config.json").write_text("{}")
    (root / "empty" / "folder").mkdir(parents=True)
    (root / "linked").symlink_to(made["x/y/z"].parent.parent, target_is_directory=True)

    found = R.find_runs(root)
    assert found == [made["b/d"], made["x/y/z"], made["b/c"], made["a"]]  # newest first, depth <= 3
    assert R.find_runs(root, max_depth=1) == [made["a"]]
    assert R.find_runs(made["b/c"]) == [made["b/c"]]  # the root itself is a run
    assert R.find_runs(tmp_path / "nowhere") == []


def test_find_runs_orders_by_modification_time_without_created(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, t in [(old, 1_000_000), (new, 2_000_000)]:
        folder.mkdir()
        (folder / "config.json").write_text("not json")
        os.utime(folder / "config.json", (t, t))
    assert R.find_runs(tmp_path) == [new, old]


# --------------------------------------------------------------------------- the synthetic run


def test_synthetic_run_is_complete_and_consistent(synthetic):
    run = R.load_run(synthetic)
    assert run.random_weights and run.config["kind"] == "demo" and run.config["experiment"]["synthetic"]
    methods, names = (
        ["zeroshot", "coop", "negprompt"],
        ["negprompt", "mcm", "maxlogit", "energy", "posi_nega"],
    )
    assert run.methods == methods and run.config["scores"] == names
    assert run.score_columns == [f"{m}/{s}" for m in methods for s in names]
    scores = run.scores
    assert len(scores) == 40 and scores["split"].tolist() == ["id"] * 24 + ["ood"] * 16
    assert run.image_features.shape == (40, 32)
    np.testing.assert_allclose(np.linalg.norm(run.image_features.astype(np.float32), axis=1), 1, atol=2e-3)
    for m in methods:
        pos, neg = run.text_features_of(m)
        assert pos.shape == (6, 32) and neg.shape == (6, 2, 32)
        ctx = run.context_tokens[m]
        assert len(ctx["positive"]) == 4 and len(ctx["negative"]) == 2
        assert {"token", "similarity"} <= set(ctx["negative"][0][0][0])
    with Image.open(scores["path"][0]) as img:
        assert img.size == (32, 32) and img.mode == "RGB"

    metrics = run.metrics
    assert len(metrics) == 3 * 5 * 3 and set(metrics["dataset"]) == {"near", "far", "mean"}
    is_id = scores["split"] == "id"
    for row in metrics.itertuples():
        col = scores[f"{row.method}/{row.score}"]
        if row.dataset != "mean":
            expected = ood_metrics(col[is_id].to_numpy(), col[scores["dataset"] == row.dataset].to_numpy())
            assert {k: getattr(row, k) for k in expected} == pytest.approx(expected)
        assert row.id_acc == pytest.approx(
            accuracy(scores[f"pred.{row.method}"][is_id], scores["label"][is_id])
        )
    mean = metrics[metrics["dataset"] == "mean"].set_index(["method", "score"])
    per_set = metrics[metrics["dataset"] != "mean"].groupby(["method", "score"])[["fpr95", "auroc"]].mean()
    pd.testing.assert_frame_equal(mean[["fpr95", "auroc"]], per_set, check_like=True)
    # plausible: ID scores higher than OOD on average for the main scores
    assert (mean.xs("mcm", level="score")["auroc"] > 0.7).all()
    assert mean.loc[("negprompt", "negprompt"), "auroc"] > 0.7


def test_synthetic_run_options(tmp_path):
    a = synthetic_run(tmp_path / "a", seed=3, n_classes=14, n_id=20, ood_sets={"o": 5}, dim=8, m=1,
                        random_weights=False, image_dir=tmp_path / "imgs")  # fmt: skip
    b = synthetic_run(tmp_path / "b", seed=3, n_classes=14, n_id=20, ood_sets={"o": 5}, dim=8, m=1,
                        image_dir=tmp_path / "imgs-b")  # fmt: skip
    ra, rb = R.load_run(a), R.load_run(b)
    assert not ra.random_weights and rb.random_weights
    assert ra.data_roots == [tmp_path / "imgs"] and len(ra.config["data"]["class_names"]) == 14
    assert len(set(ra.config["data"]["class_names"])) == 14
    assert ra.text_features["coop.neg"].shape == (14, 1, 8)
    assert all(Path(p).is_relative_to(tmp_path / "imgs") and Path(p).is_file() for p in ra.scores["path"])
    cols = ra.score_columns
    pd.testing.assert_frame_equal(ra.scores[cols], rb.scores[cols])  # same seed, same numbers
    with pytest.raises(R.RunExistsError):
        synthetic_run(tmp_path / "a", image_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()  # refused before any image was written
    assert synthetic_run(tmp_path / "a", unique=True, n_id=5, ood_sets={"o": 2}).name == "a-2"
    with pytest.raises(ValueError, match="n_id"):
        synthetic_run(tmp_path / "c", n_id=0)


def test_software_versions():
    info = R.software_versions()
    assert set(info) == {"negprompt", "python", "torch", "open_clip", "numpy", "platform"}
    assert info["numpy"] == np.__version__ and all(isinstance(v, str) and v for v in info.values())
    assert R.software_versions(device="cpu")["device"] == "cpu"
