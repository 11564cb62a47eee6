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


def test_world_v2_runs_the_presets_on_v2_with_its_published_fractions(findings):
    from negprompt.experiments import ExperimentConfig

    v2 = findings.tasks([0], ["main", "open_vocab"], "v2")
    assert [(p, o) for p, _, o in v2] == [
        ("mini-conventional", {}), ("mini-hard-ood", {}),
        ("mini-open-vocab", {"open_vocab_fraction": 0.1}), ("mini-open-vocab", {"open_vocab_fraction": 0.2}),
        ("mini-open-vocab", {"open_vocab_fraction": 0.5}),
    ]  # fmt: skip
    v1 = findings.tasks([0], ["open_vocab"], "v1")
    assert [o for _, _, o in v1] == [{"open_vocab_fraction": 0.2}, {"open_vocab_fraction": 0.8}, {}]
    for preset, settings in findings.WORLDS["v2"].items():
        config = ExperimentConfig.for_preset(preset, **settings)
        config.validate()
        assert config.data.benchmark.startswith("mini2") and config.backbone.pretrained == "miniworld-v2"


def _row(method, score, fpr, low, high, acc=0.5, ref="zeroshot/maxlogit"):
    return {"method": method, "score": score, "dataset": "mean", "fpr95_mean": fpr, "fpr95_low": low,
            "fpr95_high": high, "auroc_mean": 1 - fpr, "auroc_low": 1 - high, "auroc_high": 1 - low,
            "id_acc_mean": acc, "id_acc_low": acc - 0.01, "id_acc_high": acc + 0.01, "seeds": 3,
            "fpr95_std": 0.01, "auroc_std": 0.01, "id_acc_std": 0.0, "ref": ref}  # fmt: skip


def test_validity_table_states_each_published_ordering_as_seen(findings):
    summary = [
        _row("zeroshot", "mcm", 0.60, 0.55, 0.65, acc=0.50),
        _row("zeroshot", "gl_mcm", 0.40, 0.35, 0.45),  # agrees: better than MCM, apart
        _row("locoop", "gl_mcm", 0.42, 0.38, 0.46),  # not resolved: overlaps GL-MCM
        _row("neglabel", "neglabel", 0.10, 0.08, 0.12),
        _row("negprompt", "negprompt", 0.30, 0.25, 0.35),  # disagrees: worse than NegLabel, apart
        _row("coop", "mcm", 0.50, 0.45, 0.55, acc=0.70),  # CoOp's accuracy up, apart
        _row("zeroshot", "maxlogit", 0.05, 0.03, 0.07),
    ]
    lines = "\n".join(findings.validity_md(summary))
    assert "| GL-MCM < MCM | GL-MCM 40.0 vs MCM 60.0 | agrees |" in lines
    assert (
        "| LoCoOp + GL-MCM < GL-MCM | LoCoOp + GL-MCM 42.0 vs GL-MCM 40.0 | not resolved (intervals overlap) |"
        in lines
    )
    assert "| NegPrompt < NegLabel | NegPrompt 30.0 vs NegLabel 10.0 | disagrees |" in lines
    assert (
        "| CSP < NegPrompt | not run | — |" in lines
        and "| CSP | 17.51 / 95.76 | not run | not run |" in lines
    )
    assert "CoOp's ID accuracy > zero-shot's" in lines and lines.rstrip().endswith("| agrees |")
    assert "best training-free row here: max-logit" in lines and "5.0 ± 1.0 [3.0, 7.0]" in lines


def test_validity_table_uses_the_paired_interval_when_one_row_is_the_reference(findings):
    ref = "neglabel/neglabel"
    prompt = _row("negprompt", "negprompt", 0.30, 0.25, 0.45, ref=ref)  # overlaps NegLabel's interval
    prompt.update(d_fpr95=0.20, d_fpr95_low=0.10, d_fpr95_high=0.30)
    summary = [_row("neglabel", "neglabel", 0.10, 0.08, 0.26, ref=ref), prompt]
    lines = "\n".join(findings.validity_md(summary))
    assert (
        "| NegPrompt < NegLabel | NegPrompt 30.0 vs NegLabel 10.0 | disagrees (paired Δ +20.0 [+10.0, +30.0]) |"
        in lines
    )


def test_v2_protocols_run_as_main_runs_and_report_one_line_each(findings, tmp_path, monkeypatch):
    """P2-P4 are v2 only, carry the main runs' baselines, and each protocol's line names the best
    training-free row, NegPrompt with its Δ and the best trained row (never a test-adaptive one)."""
    from negprompt.experiments import ExperimentConfig

    tasks = findings.tasks([0], ["protocols"], "v2")
    assert [o for _, _, o in tasks] == [{"protocol": p} for p in ("P2", "P3", "P4")]
    assert findings.tasks([0], ["protocols"], "v1") == []
    for _, _, overrides in tasks:
        ExperimentConfig.for_preset(
            "mini-hard-ood", **findings.WORLDS["v2"]["mini-hard-ood"], **overrides
        ).validate()
    seen = {}
    monkeypatch.setattr(
        findings, "run_experiment", lambda config, path, **k: seen.setdefault("c", config) and path
    )
    findings.run(tmp_path, "mini-hard-ood", 0, world="v2", protocol="P3")
    assert seen["c"].data.protocol == "P3" and seen["c"].evaluation.neglabel  # the baselines are on
    rows = [
        _row("zeroshot", "maxlogit", 0.80, 0.78, 0.82),
        _row("adaneg", "adaneg", 0.50, 0.48, 0.52) | {"d_fpr95": -0.3, "d_fpr95_low": -0.32, "d_fpr95_high": -0.28},
        _row("negprompt", "negprompt", 0.85, 0.83, 0.87) | {"d_fpr95": 0.05, "d_fpr95_low": 0.03, "d_fpr95_high": 0.07},
        _row("locoop", "maxlogit", 0.70, 0.68, 0.72) | {"d_fpr95": -0.1, "d_fpr95_low": -0.12, "d_fpr95_high": -0.08},
    ]  # fmt: skip
    lines = findings.protocols_md({'{"protocol": "P3"}': rows, "{}": rows, '{"n_neg": 4}': rows})
    body = [line for line in lines if line.startswith("| P")]
    assert len(body) == 1 and body[0].startswith("| P3 | max-logit")
    assert (
        "85.0" in body[0]
        and "+5.0 [+3.0, +7.0]" in body[0]
        and "LoCoOp" in body[0]
        and "AdaNeg" not in body[0]
    )
    assert "-10.0 [-12.0, -8.0]" in body[0]  # the best trained row's paired Δ
    assert findings.protocols_md({"{}": rows}) == []


def test_by_artist_splits_acceptance_at_the_rows_threshold(findings):
    """Artist b's OOD pictures score like the ID ones and artist a's far below: at the FPR95 threshold
    over all ID pictures, b's are accepted as often as ID pictures are kept and a's never."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    id_s = rng.normal(size=400)
    ood_a, ood_b = rng.normal(-10, 1, size=100), rng.normal(size=100)
    table = pd.DataFrame({
        "path": [f"id/c/{a}-{k:03d}.png" for a in "ab" for k in range(200)]
        + [f"near-ood/d/{a}-{k:03d}.png" for a in "ab" for k in range(100)],
        "split": ["id"] * 400 + ["ood"] * 200,
        "dataset": ["mini2/id-test"] * 400 + ["mini2/near-ood"] * 200,
        "zeroshot/energy": np.r_[id_s, ood_a, ood_b],
    })  # fmt: skip
    out = findings.by_artist(table, rows=(("zeroshot", "energy"), ("coop", "maxlogit")), n_resamples=200)
    assert [(r["artist"], r["method"], r["id_pictures"], r["ood_pictures"]) for r in out] == [
        ("a", "zeroshot", 200, 100),
        ("b", "zeroshot", 200, 100),
    ]  # a row the run lacks is left out; the far-OOD set it lacks too
    a, b = out
    thr = np.sort(id_s)[::-1][379]  # the 380th highest of 400 keeps 95%
    assert a["ood_accepted"][0] == 0.0
    assert b["ood_accepted"][0] == np.mean(ood_b >= thr) and 0.85 < b["ood_accepted"][0] <= 1.0
    assert a["id_kept"][0] == np.mean(id_s[:200] >= thr)
    for r in out:
        for point, lo, hi in (r["id_kept"], r["ood_accepted"]):
            assert lo <= point <= hi
    md = "\n".join(findings.by_artist_md({"by_artist": {"0": out}}))
    assert (
        "| 0 | near-ood | energy (zero-shot) *(training-free)* | a (100) |" in md and "0.0 [0.0, 0.0]" in md
    )


def test_findings_md_quotes_the_other_v2_from_its_recorded_runs(findings):
    """docs/findings.md's tables of the v2 built with Symbola held out are rows of that JSON's report,
    and the JSON names weights that are not the shipped ones."""
    import json

    recorded = json.loads((ROOT / "benchmarks" / "findings-mini2-cov-symbola.json").read_text())
    shipped = json.loads(
        (ROOT / "negprompt" / "model_weights" / "negprompt-mini2-miniworld-v2.card.json").read_text()
    )
    card = json.loads((ROOT / recorded["weights"]["card"]).read_text())
    assert recorded["weights"]["sha256"] == card["sha256"] != shipped["sha256"]
    assert recorded["covariate_artist"] == card["recipe"]["covariate_artist"] == "symbola"
    report = findings.report(recorded).splitlines()
    text = (ROOT / "docs" / "findings.md").read_text(encoding="utf-8")
    start = text.index("**How much these conclusions depend on which artist is held out")
    section = text[start : text.index("\n### ", start)]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| row")]
    assert len(rows) == 14
    for row in rows:
        label = row.split(" | ")[0]
        assert row in report, f"findings.md's row {label} | … is not in the report of the recorded runs"
