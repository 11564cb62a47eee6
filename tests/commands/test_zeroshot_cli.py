"""`negprompt zeroshot` end to end on generated image folders with the tiny model."""

import json

import numpy as np
import pytest

from negprompt.cli import main
from negprompt.rundir import load_run


def _args(image_tree, tmp_path, out):
    return [
        "zeroshot",
        "--id-dir", str(image_tree / "id"),
        "--ood-dir", str(image_tree / "ood"),
        "--ood-dir", str(image_tree / "id" / "cat"),
        "--model", "negprompt-tiny",
        "--pretrained", "none",
        "--device", "cpu",
        "--cache-dir", str(tmp_path / "cache"),
        "--out", str(out),
        "--no-neglabel",
    ]  # fmt: skip


def test_zeroshot_end_to_end(image_tree, tmp_path, capsys):
    out = tmp_path / "runs" / "zs"
    assert main(_args(image_tree, tmp_path, out)) == 0
    printed = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in printed and "FPR95 / AUROC" in printed and "ID = positive" in printed
    run = load_run(out)
    assert run.random_weights and run.config["kind"] == "zeroshot"
    assert run.config["data"]["class_names"] == ["bird", "cat", "dog"]
    scores = run.scores
    assert len(scores) == 15 + 6 + 5
    assert {"zeroshot/mcm", "pred.zeroshot"} <= set(scores.columns)
    # the zero-shot methods are those every experiment reports: no untrained random negatives
    assert {c.split("/")[0] for c in scores.columns if "/" in c} == {"zeroshot"}
    assert "zeroshot/negprompt" not in scores.columns
    assert run.image_features.shape == (26, 64)
    metrics = run.metrics
    assert set(metrics["dataset"]) == {"ood", "cat", "mean"}
    # the table's numbers are the metrics of the stored scores
    from negprompt.metrics import ood_metrics

    ids = scores[scores.split == "id"]["zeroshot/mcm"].to_numpy()
    ood = scores[scores.dataset == "ood"]["zeroshot/mcm"].to_numpy()
    row = metrics[(metrics.score == "mcm") & (metrics.dataset == "ood")].iloc[0]
    assert row.auroc == pytest.approx(ood_metrics(ids, ood)["auroc"])
    id_rows = scores[scores.split == "id"]
    assert row.id_acc == pytest.approx(np.mean(id_rows["pred.zeroshot"] == id_rows["label"]))
    assert f"{100 * row.auroc:6.2f}" in printed
    assert json.loads((out / "config.json").read_text())["backbone"]["warning"].startswith("RANDOM WEIGHTS")


def test_zeroshot_refuses_an_existing_run_directory(image_tree, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert main(_args(image_tree, tmp_path, out)) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "precious"


def test_zeroshot_missing_folder_is_a_clear_error(image_tree, tmp_path, capsys):
    args = _args(image_tree, tmp_path, tmp_path / "run")
    args[2] = str(tmp_path / "nowhere")
    assert main(args) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
