"""The command line answers at once: help, every sub-command's help and argument errors import no torch.

Each check runs in a fresh interpreter (a test process has torch loaded already), with the
worktree's package first on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from negprompt.cli import COMMANDS, build_parser, main, suggest_option

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from negprompt.cli import main
out = {}
for argv in json.loads(sys.argv[1]):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out[" ".join(argv)] = code
heavy = sorted(m for m in ("torch", "torchvision", "open_clip", "pandas", "streamlit") if m in sys.modules)
print(json.dumps({"codes": out, "heavy": heavy}))
"""


def _probe(argvs: list[list[str]]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argvs)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_parsing_imports_no_torch():
    argvs = [["--help"], *([c, "--help"] for c in COMMANDS)]
    argvs += [
        ["run", "mini-hard-ood", "--epocs", "5"],  # a mistyped option
        ["run", "no-such-preset"],  # an invalid choice
        ["train", "--epochs", "many"],  # a value of the wrong type
        ["detect", "runs/x"],  # a missing required option
        ["detect", "runs/x", "--images", "a", "--tpr", "1.5"],  # a value out of range
        ["trian"],  # a mistyped command
    ]
    result = _probe(argvs)
    assert result["heavy"] == [], f"parsing imported {result['heavy']}"
    codes = result["codes"]
    assert all(codes[" ".join(a)] == 0 for a in argvs[: 1 + len(COMMANDS)])
    assert all(codes[" ".join(a)] == 2 for a in argvs[1 + len(COMMANDS) :])


def test_a_mistyped_option_names_the_closest_one_with_the_commands_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "mini-hard-ood", "--epocs", "5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: negprompt run ")  # the sub-command's usage, not the top level's
    assert "unrecognized arguments: --epocs 5" in err and "--epocs: did you mean --epochs?" in err
    with pytest.raises(SystemExit):
        main(["detect", "runs/x", "--images", "a", "--treshold=0.5"])
    err = capsys.readouterr().err
    assert err.startswith("usage: negprompt detect ") and "did you mean --threshold?" in err


def test_suggestions_only_when_close():
    run = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices)
    parser = run.choices["train"]
    assert suggest_option("--n-negs", parser) == "--n-neg"
    assert suggest_option("--shots=4", parser) == "--shots"
    assert suggest_option("--zzzzzz", parser) is None


def test_the_settings_choices_are_the_trainings():
    """The settings module spells out the training names it offers (to stay free of torch)."""
    from dataclasses import fields

    from negprompt.experiments.config import MODES, SELECT, TRAIN_PRESETS, TrainingSettings
    from negprompt.losses import IMG_LOSSES
    from negprompt.train import PRESETS
    from negprompt.train import config as train_config

    assert TRAIN_PRESETS == tuple(PRESETS)
    assert (SELECT, MODES) == (train_config.SELECT, train_config.MODES)
    img_loss = next(f for f in fields(TrainingSettings) if f.name == "img_loss")
    assert img_loss.metadata["choices"] == tuple(IMG_LOSSES)
