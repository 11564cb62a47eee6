"""What the commands say: zero-shot runs speak of no training, LoCoOp's epochs are LoCoOp's, the
class folders a benchmark leaves out are information."""

from __future__ import annotations

import logging

import pytest
from PIL import Image

from negprompt.cli import build_parser, main
from negprompt.rundir import load_run


def _subparser(name: str):
    action = next(a for a in build_parser()._actions if getattr(a, "choices", None))
    return action.choices[name]


def test_zeroshot_offers_no_resume_and_its_seed_is_not_a_training_seed(capsys):
    options = {o: a for a in _subparser("zeroshot")._actions for o in a.option_strings}
    assert "--resume" not in options and "train" not in options["--seed"].help
    assert "NegLabel" in options["--seed"].help
    with pytest.raises(SystemExit):
        main(["zeroshot", "--resume"])
    assert "unrecognized arguments: --resume" in capsys.readouterr().err
    assert "--resume" in {o for a in _subparser("train")._actions for o in a.option_strings}


def test_zeroshot_log_names_no_learned_prompts(image_tree, tmp_path):
    out = tmp_path / "zs"
    argv = [
        "zeroshot", "--id-dir", str(image_tree / "id"), "--ood-dir", str(image_tree / "ood"),
        "--model", "negprompt-tiny", "--pretrained", "none", "--device", "cpu",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--no-neglabel", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    log = load_run(out).log
    assert "zero-shot: nothing is trained" in log and "learned on" not in log and "train 0" not in log


def test_locoop_epochs_are_labelled_locoop(tmp_path):
    root = tmp_path / "train"
    for k, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(6):
            colour = [40, 40, 40]
            colour[k] = 150 + 10 * i
            Image.new("RGB", (20, 20), tuple(colour)).save(root / name / f"{i}.png")
    out = tmp_path / "run"
    argv = [
        "train", "--train-dir", str(root), "--out", str(out), "--model", "negprompt-tiny",
        "--pretrained", "none", "--device", "cpu", "--shots", "4", "--val-per-class", "2",
        "--epochs", "2", "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--no-neglabel",
    ]  # fmt: skip
    assert main(argv) == 0
    log = load_run(out).log
    assert log.count("stage 1 epoch ") == 2 and log.count("LoCoOp epoch ") == 2
    assert log.count("stage 2 epoch ") == 2


def test_class_folders_left_out_are_reported_as_information(tmp_path, caplog):
    from negprompt.data.folders import image_folder

    for name in ("a", "b", "c", "d"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "0.png")
    with caplog.at_level(logging.INFO, logger="negprompt"):
        image_folder(tmp_path, class_names={"a": "A", "b": "B"}, name="demo/id-test")
    (record,) = [r for r in caplog.records if "class folders" in r.getMessage()]
    assert record.levelno == logging.INFO
    text = record.getMessage()
    assert "using 2 of its 4 class folders" in text and "(c, d)" in text and "expected" in text
    assert "skipped" not in text


def test_log_lines_go_to_the_stderr_of_the_moment(monkeypatch):
    """After `negprompt` set up logging, a later swap of sys.stderr (a test's capture, a notebook) is
    followed, and a closed earlier stream breaks nothing."""
    import io
    import logging
    import sys

    from negprompt.cli import configure_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging()
    logging.getLogger("negprompt.x").warning("one")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("negprompt.x").warning("two")
    assert second.getvalue() == "two\n"
