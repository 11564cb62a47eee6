"""scripts/mini_findings.py: the baselines its main runs add, and finished runs that lack some."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def findings():
    spec = importlib.util.spec_from_file_location("mini_findings", ROOT / "scripts" / "mini_findings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_baselines_default_to_every_one_and_are_checked(findings):
    assert findings.MAIN_BASELINES == {
        "neglabel": True, "csp": True, "adaneg": True, "adaneg_coop": True, "tanl": True,
    }  # fmt: skip
    assert findings.choose_baselines(["neglabel", "csp"]) == {
        "neglabel": True, "csp": True, "adaneg": False, "adaneg_coop": False, "tanl": False,
    }  # fmt: skip
    with pytest.raises(SystemExit, match=r"unknown baseline\(s\) \['odin'\]"):
        findings.choose_baselines(["neglabel", "odin"])
    with pytest.raises(SystemExit, match="AdaNeg adapts NegLabel's labels: add neglabel"):
        findings.choose_baselines(["adaneg"])
    with pytest.raises(SystemExit, match="add adaneg to --baselines"):
        findings.choose_baselines(["neglabel", "adaneg_coop"])
    # the settings they turn on are experiment settings
    from negprompt.experiments import ExperimentConfig

    config = ExperimentConfig.for_preset("mini-conventional", **findings.MAIN_BASELINES)
    assert (
        config.evaluation.csp
        and config.evaluation.adaneg_coop
        and config.evaluation.adaneg_stream == "per_set"
        and config.evaluation.tanl
        and config.evaluation.tanl_stream == "per_set"
    )


def test_a_finished_main_run_without_a_wanted_baseline_is_not_reused(findings, tmp_path):
    from negprompt.synthetic import synthetic_run

    path = synthetic_run(tmp_path / "mini-conventional-s0")  # a finished run whose rows hold no baseline
    with pytest.raises(
        SystemExit, match=r"lacks the baseline\(s\) \['neglabel', 'csp'\]: delete that folder"
    ):
        findings.run(
            tmp_path, "mini-conventional", 0, baselines={"neglabel": True, "csp": True, "adaneg": False}
        )
    assert findings.run(tmp_path, "mini-conventional", 0, baselines={"csp": False}) == path
