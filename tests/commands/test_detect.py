"""``negprompt detect`` and `negprompt.detect.Detector`: a finished run applied to new images.

The run is a small ``negprompt train`` run of the tiny random CLIP with ID test and OOD folders, so
detection on its own test images must give its own scores and predicted classes exactly.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from negprompt.cli import main
from negprompt.detect import Detector
from negprompt.metrics import threshold_at_tpr
from negprompt.rundir import load_run

CLASSES = ["red", "green", "blue"]


def _squares(root, seed: int, n: int = 6):
    rng = np.random.default_rng(seed)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(n):
            colour = rng.integers(20, 90, 3)
            colour[k] = 150 + rng.integers(0, 100)
            Image.new("RGB", (20, 20), tuple(int(c) for c in colour)).save(root / name / f"{i}.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished train run with ID test and OOD folders: (run path, id folder, ood folder, cache)."""
    base = tmp_path_factory.mktemp("detect")
    _squares(base / "train", 0)
    _squares(base / "id", 1, n=4)
    ood = base / "ood" / "nested"
    ood.mkdir(parents=True)
    for i in range(5):
        Image.new("RGB", (20, 20), (200, 200, 30 * i)).save(ood / f"{i}.png")
    out, cache = base / "run", base / "cache"
    argv = [
        "train", "--train-dir", str(base / "train"), "--id-dir", str(base / "id"),
        "--ood-dir", str(base / "ood"), "--out", str(out), "--model", "negprompt-tiny",
        "--pretrained", "none", "--device", "cpu", "--shots", "4", "--val-per-class", "2",
        "--epochs", "2", "--cache-dir", str(cache), "--no-progress", "--no-neglabel",
    ]  # fmt: skip
    assert main(argv) == 0
    return out, base / "id", base / "ood", cache


def _detect(trained, out, *extra):
    run, id_dir, ood_dir, cache = trained
    argv = ["detect", str(run), "--images", str(id_dir), "--images", str(ood_dir), "--out", str(out)]
    return main([*argv, "--device", "cpu", "--cache-dir", str(cache), "--no-progress", *extra])


def _score_columns(frame):
    return [c for c in frame.columns if "/" in c or c.startswith("pred.")]


def test_detect_reproduces_the_runs_own_scores_and_classes(trained, tmp_path, capsys):
    run = load_run(trained[0])
    val = run.validation_scores  # recorded at training time: every score, on images never tested
    assert val is not None and len(val) == 3 * 2 and (val["split"] == "id").all()
    assert set(_score_columns(run.scores)) <= set(val.columns)
    assert not set(val["path"]) & set(run.scores["path"])
    out = tmp_path / "det"
    assert _detect(trained, out) == 0
    printed = capsys.readouterr().out
    assert "keeping 95% of the run's 6 ID validation images" in printed
    decisions = pd.read_parquet(out / "decisions.parquet")
    assert len(decisions) == 12 + 5
    joined = run.scores.merge(decisions, on="path", suffixes=("", ".detect"))
    assert len(joined) == len(run.scores)  # every test image of the run, ID and OOD
    columns = _score_columns(run.scores)
    assert {"negprompt/negprompt", "pred.negprompt", "coop/mcm", "zeroshot/mcm"} <= set(columns)
    for column in columns:  # bit for bit, not approximately
        np.testing.assert_array_equal(joined[column].to_numpy(), joined[column + ".detect"].to_numpy())
    names = run.config["data"]["class_names"]
    assert joined["predicted_class"].tolist() == [names[i] for i in joined["pred.negprompt"]]
    # the default rule: the threshold keeping 95% of the ID *validation* images, recorded
    expected = threshold_at_tpr(run.validation_scores["negprompt/negprompt"], 0.95)
    detection = load_run(out)  # an ordinary run directory: the dashboard opens it
    rule = detection.config["experiment"]["detect"]["threshold"]
    assert rule["source"] == "validation" and rule["rule"] == "tpr" and rule["value"] == expected
    assert (decisions["decision"] == np.where(decisions["score"] >= expected, "id", "ood")).all()
    assert detection.config["kind"] == "detect"
    assert set(detection.scores.loc[detection.scores["split"] == "id", "path"]) == set(
        decisions.loc[decisions["decision"] == "id", "path"]
    )
    csv = pd.read_csv(out / "decisions.csv")
    assert csv["path"].tolist() == decisions["path"].tolist()
    assert list(csv.columns[:6]) == ["path", "input", "decision", "predicted_class", "score", "threshold"]


def test_the_runs_threshold_gives_the_runs_decisions(trained, tmp_path):
    run = load_run(trained[0])
    scores = run.scores
    threshold = threshold_at_tpr(scores.loc[scores["split"] == "id", "negprompt/negprompt"], 0.95)
    out = tmp_path / "det"
    assert _detect(trained, out, "--threshold", repr(threshold)) == 0
    decisions = pd.read_parquet(out / "decisions.parquet")
    joined = scores.merge(decisions, on="path")
    own = np.where(joined["negprompt/negprompt_x"] >= threshold, "id", "ood")
    assert (joined["decision"] == own).all()
    # the run's own FPR95 follows from these decisions: accepted OOD images / OOD images
    ood = joined["split"] == "ood"
    fpr = (joined.loc[ood, "decision"] == "id").mean()
    m = run.metrics
    assert fpr == pytest.approx(m[(m.method == "negprompt") & (m.score == "negprompt")].fpr95.iloc[0])
    assert load_run(out).config["experiment"]["detect"]["threshold"]["rule"] == "fixed"


def test_python_twin_agrees_with_the_command(trained, tmp_path):
    run_dir, id_dir, ood_dir, cache = trained
    out = tmp_path / "det"
    assert _detect(trained, out, "--tpr", "0.8", "--score", "coop/mcm") == 0
    detector = Detector.from_run(run_dir, tpr=0.8, score="coop/mcm", device="cpu", progress=False)
    table = detector.decide([id_dir, ood_dir], cache_dir=cache, progress=False)
    command = pd.read_parquet(out / "decisions.parquet")
    pd.testing.assert_frame_equal(table.reset_index(drop=True), command)
    expected = threshold_at_tpr(load_run(run_dir).validation_scores["coop/mcm"], 0.8)
    assert detector.threshold.value == expected and detector.threshold.tpr == 0.8
    scores = detector.scores(ood_dir, cache_dir=cache, progress=False)
    assert "decision" not in scores and len(scores) == 5


def test_a_run_without_validation_scores_falls_back_and_says_so(trained, tmp_path, capsys):
    old = tmp_path / "old-run"  # as written before validation scores were recorded
    shutil.copytree(trained[0], old)
    (old / "validation_scores.parquet").unlink()
    out = tmp_path / "det"
    assert _detect((old, *trained[1:]), out) == 0
    assert "ID test images (the run recorded no ID validation scores" in capsys.readouterr().out
    rule = load_run(out).config["experiment"]["detect"]["threshold"]
    scores = load_run(old).scores
    assert rule["source"] == "id-test" and "fixed threshold" in rule["note"]
    assert rule["value"] == threshold_at_tpr(scores.loc[scores["split"] == "id", "negprompt/negprompt"])


def test_zero_shot_run(image_tree, tmp_path, capsys):
    run = tmp_path / "zs"
    cache = tmp_path / "cache"
    argv = [
        "zeroshot", "--id-dir", str(image_tree / "id"), "--ood-dir", str(image_tree / "ood"),
        "--model", "negprompt-tiny", "--pretrained", "none", "--device", "cpu",
        "--cache-dir", str(cache), "--out", str(run), "--no-neglabel", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "det"
    argv = ["detect", str(run), "--images", str(image_tree), "--out", str(out), "--cache-dir", str(cache)]
    assert main([*argv, "--device", "cpu", "--no-progress"]) == 0
    assert "a zero-shot run has no validation images" in capsys.readouterr().out
    decisions = pd.read_parquet(out / "decisions.parquet")
    assert len(decisions) == 15 + 6
    joined = load_run(run).scores.merge(decisions, on="path", suffixes=("", ".detect"))
    np.testing.assert_array_equal(joined["zeroshot/mcm"], joined["zeroshot/mcm.detect"])
    assert (decisions["threshold"] == decisions["threshold"].iloc[0]).all()


# ---------------------------------------------------------------------------------------- bad input


def test_unreadable_images_are_listed_by_reason_and_skipped(trained, tmp_path, capsys):
    folder = tmp_path / "mixed"
    shutil.copytree(trained[2], folder)
    (folder / "notes.png").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    good = (folder / "nested" / "0.png").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])  # header fine, pixels cut off
    out = tmp_path / "det"
    run, _, _, cache = trained
    argv = ["detect", str(run), "--images", str(folder), "--out", str(out), "--cache-dir", str(cache)]
    assert main([*argv, "--device", "cpu", "--no-progress"]) == 0
    out_, err = capsys.readouterr()
    printed = out_ + err
    assert printed.count("3 image(s) skipped") == 1
    for reason in (
        "1 not an image Pillow can read",
        "1 empty file",
        "1 damaged: the pixels cannot be decoded",
    ):
        assert reason in printed
    assert len(pd.read_parquet(out / "decisions.parquet")) == 5
    skipped = load_run(out).config["experiment"]["detect"]["skipped"]
    assert skipped["empty file"] == [str(folder / "empty.jpg")]


def test_existing_output_is_refused_without_overwrite(trained, tmp_path, capsys):
    out = tmp_path / "det"
    assert _detect(trained, out) == 0
    before = (out / "config.json").read_text()
    assert _detect(trained, out, "--tpr", "0.5") == 2
    assert "exists; choose another --out, or replace it with --overwrite" in capsys.readouterr().err
    assert (out / "config.json").read_text() == before
    assert _detect(trained, out, "--tpr", "0.5", "--overwrite") == 0
    assert load_run(out).config["experiment"]["detect"]["threshold"]["tpr"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det"]  # nothing left beside it
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert _detect(trained, other, "--overwrite") == 2
    assert "is not the output of negprompt detect" in capsys.readouterr().err
    assert (other / "keep.txt").read_text() == "mine"


def test_damaged_unfinished_and_foreign_runs_are_named(trained, tmp_path, capsys):
    run = trained[0]
    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    (damaged / "scores.parquet").write_bytes(b"PAR1 broken")
    assert _detect((damaged, *trained[1:]), tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert str(damaged / "scores.parquet") in err and "corrupt" in err

    unfinished = tmp_path / "unfinished"
    (tmp_path / "unfinished.partial" / "checkpoints").mkdir(parents=True)
    assert _detect((unfinished, *trained[1:]), tmp_path / "b") == 2
    assert f"--resume --out {unfinished}" in capsys.readouterr().err

    foreign = tmp_path / "foreign"  # a run whose text features another backbone computed
    shutil.copytree(run, foreign)
    with np.load(foreign / "text_features.npz") as npz:
        texts = {k: npz[k] for k in npz.files}
    texts["coop.pos"] = np.roll(texts["coop.pos"], 1, axis=1)
    np.savez(foreign / "text_features.npz", **texts)
    assert _detect((foreign, *trained[1:]), tmp_path / "c") == 2
    err = capsys.readouterr().err
    assert "text_features.npz" in err and "weights" in err

    config = json.loads((run / "config.json").read_text())
    config["backbone"]["weights"] = "laion2b_s34b_b88k"
    other = tmp_path / "other-weights"
    shutil.copytree(run, other)
    (other / "config.json").write_text(json.dumps(config))
    assert _detect((other, *trained[1:]), tmp_path / "d") == 2
    assert "weights 'laion2b_s34b_b88k'" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_no_readable_image_is_an_error_not_a_crash(trained, tmp_path, capsys):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.png").write_text("text")
    run, _, _, cache = trained
    argv = [
        "detect",
        str(run),
        "--images",
        str(folder),
        "--out",
        str(tmp_path / "o"),
        "--cache-dir",
        str(cache),
    ]
    assert main([*argv, "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no readable image" in err and "1 not an image Pillow can read" in err
    assert main([*argv[:3], str(tmp_path / "missing"), *argv[4:], "--device", "cpu"]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_the_runs_stored_text_features_are_used_once_checked(trained, tmp_path):
    """Re-encoding a run's prompts may differ from what it scored with in the last bits (it does for
    negprompt-mini, ~1e-7): within the tolerance the stored features are the ones used."""
    nudged = tmp_path / "nudged"
    shutil.copytree(trained[0], nudged)
    with np.load(nudged / "text_features.npz") as npz:
        texts = {k: npz[k] for k in npz.files}
    texts["negprompt.neg"] = texts["negprompt.neg"] + np.float32(1e-5)
    np.savez(nudged / "text_features.npz", **texts)
    detector = Detector.from_run(nudged, device="cpu", progress=False)
    negprompt = next(m for m in detector.methods if m.name == "negprompt")
    np.testing.assert_array_equal(negprompt.neg.numpy(), texts["negprompt.neg"])


def test_a_run_not_written_by_the_experiments_is_refused(trained, tmp_path, capsys):
    from negprompt.synthetic import synthetic_run

    foreign = synthetic_run(tmp_path / "synthetic", image_dir=tmp_path / "images")
    assert _detect((foreign, *trained[1:]), tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert str(foreign / "config.json") in err and "experiment settings" in err
    assert not (tmp_path / "out").exists()


def test_neglabel_is_rebuilt_from_the_runs_words(image_tree, tmp_path):
    nouns = "".join(
        f"0{i:07d} 03 n 01 {word} 0 000 | gloss  \n"
        for i, word in enumerate(["entity", "chair", "table", "lamp", "river", "cloud", "stone"])
    )
    wordnet = tmp_path / "wordnet"
    wordnet.mkdir()
    (wordnet / "data.noun").write_text("  1 licence header  \n" + nouns)
    (wordnet / "data.adj").write_text("  1 licence header  \n00030000 00 a 01 green 0 000 | grass  \n")
    run, cache = tmp_path / "zs", tmp_path / "cache"
    argv = [
        "zeroshot", "--id-dir", str(image_tree / "id"), "--ood-dir", str(image_tree / "ood"),
        "--model", "negprompt-tiny", "--pretrained", "none", "--device", "cpu", "--cache-dir", str(cache),
        "--out", str(run), "--neglabel", "--wordnet-dir", str(wordnet), "--neglabel-n-neg", "4",
        "--neglabel-groups", "2", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    assert len(load_run(run).config["experiment"]["neglabel"]["words"]) == 4
    detector = Detector.from_run(run, device="cpu", progress=False)
    assert detector.threshold.score == "neglabel/neglabel"
    table = detector.scores(image_tree, cache_dir=cache, progress=False)
    joined = load_run(run).scores.merge(table, on="path", suffixes=("", ".detect"))
    assert len(joined) == 15 + 6
    for column in ("neglabel/neglabel", "pred.neglabel", "neglabel.top_negative"):
        np.testing.assert_array_equal(joined[column], joined[column + ".detect"])
