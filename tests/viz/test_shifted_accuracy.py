"""The covariate-shift accuracy of a run's config.json: read, checked, and shown on the Runs page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from negprompt.rundir import RunDirError
from negprompt.synthetic import synthetic_run
from negprompt.viz import shifted_accuracy_table

APP = Path(__file__).resolve().parents[2] / "app" / "app.py"
ROWS = [
    {"method": "zeroshot", "dataset": "mini2/id covariate", "images": 40, "acc": 0.25, "acc_low": 0.125,
     "acc_high": 0.4},
    {"method": "coop", "dataset": "mini2/id covariate", "images": 40, "acc": 0.3, "acc_low": None,
     "acc_high": None},
]  # fmt: skip


def test_rows_are_read_in_percent_with_their_intervals():
    table = shifted_accuracy_table({"experiment": {"shifted_accuracy": ROWS}})
    assert table.to_dict("records") == [
        {"method": "zeroshot", "set": "mini2/id covariate", "images": 40, "top-1 %": 25.0, "interval %": "[12.5, 40.0]"},
        {"method": "coop", "set": "mini2/id covariate", "images": 40, "top-1 %": 30.0, "interval %": "—"},
    ]  # fmt: skip
    assert shifted_accuracy_table({"experiment": {}}) is None and shifted_accuracy_table({}) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"rows": 1},
        [{"method": "x"}],
        [{**ROWS[0], "acc": 1.5}],
        [{**ROWS[0], "images": -1}],
        [{**ROWS[0], "acc": "90"}],
    ],
)
def test_a_damaged_entry_names_config_json_and_the_fix(bad):
    with pytest.raises(RunDirError, match=r"config.json: experiment.shifted_accuracy.*"):
        shifted_accuracy_table({"experiment": {"shifted_accuracy": bad}})


def _run_with(tmp_path: Path, rows) -> Path:
    run = synthetic_run(
        tmp_path / "runs" / "r", seed=3, n_id=8, ood_sets={"far": 4}, image_dir=tmp_path / "img"
    )
    config = json.loads((run / "config.json").read_text())
    config.setdefault("experiment", {})["shifted_accuracy"] = rows
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.mark.parametrize("rows, shown", [(ROWS, True), ("damaged", False)])
def test_the_runs_page_shows_the_table_or_the_damage(tmp_path, monkeypatch, rows, shown):
    run = _run_with(tmp_path, rows)
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(run.parent))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception
    headers = [h.value for h in at.subheader]
    errors = "\n".join(e.value for e in at.error)
    assert ("ID accuracy under covariate shift" in headers) is shown
    assert ("experiment.shifted_accuracy must be a list" in errors) is not shown
    assert "The whole leaderboard" in headers  # the rest of the page is still there
