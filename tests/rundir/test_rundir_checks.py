"""``checks.json`` in run directories: written with the run, absent from older runs, damage named."""

from __future__ import annotations

import json

import pytest

from negprompt import rundir as R
from negprompt.checks import Check, to_json

from .test_rundir import make_parts


def _checks():
    return [
        Check(
            "negatives_collapsed",
            "negative prompts collapsed",
            "warn",
            1.0,
            0.999,
            "one prompt",
            {"classes": 2},
        ),
        Check("random_weights", "random backbone weights", "ok", False, False, "trained weights"),
    ]


def test_checks_are_written_and_read_back(tmp_path):
    out = R.write_run(tmp_path / "run", **make_parts(tmp_path), checks=to_json(_checks()))
    checks = R.load_run(out).checks
    assert [(c.id, c.status, c.value) for c in checks] == [
        ("negatives_collapsed", "warn", 1.0),
        ("random_weights", "ok", False),
    ]
    assert checks[0].details == {"classes": 2}


def test_a_run_from_before_checks_has_none(tmp_path):
    out = R.write_run(tmp_path / "run", **make_parts(tmp_path))
    assert R.load_run(out).checks is None


@pytest.mark.parametrize("text", ["{not json", json.dumps({"format": 1, "checks": "no"}), ""])
def test_a_damaged_checks_file_is_named_and_the_rest_of_the_run_still_loads(tmp_path, text):
    out = R.write_run(tmp_path / "run", **make_parts(tmp_path), checks=to_json(_checks()))
    (out / "checks.json").write_text(text, encoding="utf-8")
    run = R.load_run(out)
    with pytest.raises(R.RunDirError, match="checks.json"):
        _ = run.checks
    assert len(run.metrics) == 2 and run.log  # everything else is shown
