"""Run-directory details a reader relies on: run order, stored data roots, empty metrics, versions."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from negprompt import rundir as R
from negprompt.rundir import write as W
from tests.rundir.test_rundir import make_parts


def test_find_runs_orders_by_the_recorded_creation_time_not_the_file_time(tmp_path):
    parts = make_parts(tmp_path)
    made = []
    for i, day in enumerate(["03", "01", "02"]):  # written in another order than created
        cfg = {**parts["config"], "created": f"2025-01-{day}T12:00:00+00:00"}
        made.append(R.write_run(tmp_path / "runs" / f"r{i}", **{**parts, "config": cfg}))
        os.utime(made[-1] / "config.json", (1_000_000 + i, 1_000_000 + i))
    assert R.find_runs(tmp_path / "runs") == [made[0], made[2], made[1]]


def test_relative_data_roots_are_stored_absolute(tmp_path, monkeypatch):
    parts = make_parts(tmp_path)
    monkeypatch.chdir(tmp_path)
    cfg = {**parts["config"], "data": {**parts["config"]["data"], "roots": ["data"]}}
    run = R.load_run(R.write_run(tmp_path / "run", **{**parts, "config": cfg}))
    assert run.config["data"]["roots"] == [str(tmp_path / "data")]
    assert run.config["data"]["id"] == "toy" and run.data_roots == [tmp_path / "data"]
    assert parts["config"]["data"]["roots"] == [str(tmp_path / "data")]  # the caller's config is untouched


def test_every_metric_value_may_be_empty_but_not_the_row_names(tmp_path):
    parts = make_parts(tmp_path)
    metrics = parts["metrics"].copy()
    metrics.loc[1, ["fpr95", "aupr_in", "id_acc"]] = np.nan  # e.g. no OOD set for the mean row
    run = R.load_run(R.write_run(tmp_path / "ok", **{**parts, "metrics": metrics}))
    assert run.metrics["fpr95"].isna().tolist() == [False, True]
    for col in ("method", "score", "dataset"):
        bad = parts["metrics"].copy()
        bad.loc[0, col] = None
        with pytest.raises(R.RunDirError, match=f"^metrics column '{col}' has empty values$"):
            R.write_run(tmp_path / col, **{**parts, "metrics": bad})


def test_free_run_path_refuses_an_existing_name_unless_asked(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(R.RunExistsError, match="already exists"):
        W.free_run_path(tmp_path / "run")
    assert W.free_run_path(tmp_path / "run", unique=True) == tmp_path / "run-2"
    assert W.free_run_path(tmp_path / "new") == tmp_path / "new"


def test_software_versions_are_the_installed_ones():
    info = R.software_versions()
    assert info["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert "not installed" not in (info["open_clip"], info["negprompt"], info["torch"])
