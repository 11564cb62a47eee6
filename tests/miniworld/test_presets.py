"""The mini-world presets of `negprompt run`: configuration, data, and several seeds end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from negprompt.cli import main
from negprompt.experiments import ExperimentConfig
from negprompt.experiments.data import load_data
from negprompt.experiments.seeds import format_summary, summarize
from negprompt.rundir import load_run


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_presets_are_configured_as_the_paper_experiments_they_mirror(tmp_path):
    hard = ExperimentConfig.for_preset("mini-hard-ood", data_root=str(tmp_path))
    assert (
        hard.base_preset == "hard-ood"
        and hard.backbone.model == "negprompt-mini"
        and hard.data.benchmark == "mini-hard"
    )
    with pytest.raises(ValueError, match="protocol cannot be given"):
        ExperimentConfig.for_preset("mini-hard-ood", protocol="P1")
    ov = ExperimentConfig.for_preset("mini-open-vocab", data_root=str(tmp_path))
    assert ov.base_preset == "open-vocab" and ov.data.open_vocab_fraction == 0.5
    conv = ExperimentConfig.for_preset("mini-conventional", data_root=str(tmp_path))
    with pytest.raises(ValueError, match="open_vocab_fraction only applies"):
        ExperimentConfig.for_preset("mini-conventional", open_vocab_fraction=0.5)
    data = load_data(conv)
    assert len(data.class_names) == 10 and set(data.ood) == {"mini/digits", "mini/shapes", "mini/textures"}
    assert data.ood["mini/shapes"].class_names[0] == "red circle"  # OOD sets keep their classes
    data = load_data(ov)
    assert data.train_classes == [0, 1, 2, 3, 4] and len(data.id_test.class_names) == 10
    data = load_data(ExperimentConfig.for_preset("mini-hard-ood", data_root=str(tmp_path)))
    assert list(data.ood["mini/held-out clothing"].class_names) == ["coat", "shirt", "sneaker", "ankle boot"]
    assert not set(data.class_names) & {"coat", "shirt", "sneaker", "ankle boot"}


def test_summary_is_mean_and_sample_std_over_seeds():
    a = pd.DataFrame({"method": ["m"], "score": ["s"], "dataset": ["d"], "fpr95": [0.1], "auroc": [0.9]})
    b = a.assign(fpr95=[0.3], auroc=[0.7])
    s = summarize({0: a, 1: b})
    assert s.fpr95_mean[0] == pytest.approx(0.2) and s.fpr95_std[0] == pytest.approx(0.1414213562)
    assert s.seeds[0] == 2
    assert "20.00 ± 14.14" in format_summary(s)
    one = summarize({0: a})
    assert np.isnan(one.fpr95_std[0]) and "±" not in format_summary(one)  # n = 1: no spread to show
    with pytest.raises(ValueError):
        summarize({})


def test_mini_hard_ood_over_two_seeds_end_to_end(tmp_path, capsys):
    out = tmp_path / "hard"
    args = ["run", "mini-hard-ood", "--seeds", "0", "1", "--epochs", "2", "--out", str(out),
            "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mean ± sd over seeds [0, 1]" in printed and "RANDOM WEIGHTS" not in printed
    runs = [load_run(out / f"seed-{k}") for k in (0, 1)]
    assert [r.config["experiment"]["settings"]["seed"] for r in runs] == [0, 1]
    # 2 epochs of 96 images in batches of 64: 4 steps per stage, which the checks report
    checks = {c.id: c for c in runs[0].checks}
    assert checks["too_few_steps"].fired and checks["too_few_steps"].value == {"stage1": 4, "stage2": 4}
    assert not checks["random_weights"].fired
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.method) == {"zeroshot", "coop", "locoop", "negprompt"} and (summary.seeds == 2).all()

    def pick(df):
        return df[
            (df.method == "negprompt") & (df.score == "negprompt") & (df.dataset == "mini/held-out clothing")
        ]

    row = pick(summary).iloc[0]
    values = [pick(r.metrics).iloc[0].auroc for r in runs]
    assert row.auroc_mean == pytest.approx(sum(values) / 2)
    text = (out / "summary.md").read_text()
    assert "±" in text and text.splitlines()[2].startswith("NegPrompt") and "pooled 95% CI" in text
    # the pooled interval holds the mean; trained rows carry their Δ to the best training-free row
    assert (
        (summary.fpr95_low <= summary.fpr95_mean + 1e-12) & (summary.fpr95_mean <= summary.fpr95_high + 1e-12)
    ).all()
    assert summary.loc[summary.method == "negprompt", "d_fpr95"].notna().all()
    assert summary.loc[summary.method == "zeroshot", "d_fpr95"].isna().all()
    assert main(args[:2] + ["--seed", "0", "--seeds", "1"]) == 2
