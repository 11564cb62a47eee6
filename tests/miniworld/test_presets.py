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


def test_presets_default_to_mini_world_v2_with_its_model_and_defaults(tmp_path):
    """v2's benchmarks, negprompt-mini2 and v2's protocol and open-vocabulary lists, unless given; a
    model given alone takes `auto` weights (v2's tag belongs to v2's model)."""
    hard = ExperimentConfig.for_preset("mini-hard-ood")
    conv = ExperimentConfig.for_preset("mini-conventional")
    ov = ExperimentConfig.for_preset("mini-open-vocab")
    for config, benchmark in ((hard, "mini2-hard"), (conv, "mini2"), (ov, "mini2")):
        assert config.data.benchmark == benchmark
        assert (config.backbone.model, config.backbone.pretrained) == ("negprompt-mini2", "miniworld-v2")
    assert hard.base_preset == "hard-ood" and hard.data.protocol == "P1"
    assert ExperimentConfig.for_preset("mini-hard-ood", protocol="P3").data.protocol == "P3"
    assert (ov.data.open_vocab_fraction, ov.data.open_vocab_mode) == (0.1, "published")
    assert (
        ExperimentConfig.for_preset("mini-open-vocab", open_vocab_fraction=0.5).data.open_vocab_fraction
        == 0.5
    )
    other = ExperimentConfig.for_preset("mini-conventional", model="ViT-B-32")
    assert (other.backbone.model, other.backbone.pretrained) == ("ViT-B-32", "auto")
    mine = ExperimentConfig.for_preset("mini-conventional", pretrained="my.safetensors")
    assert (mine.backbone.model, mine.backbone.pretrained) == ("negprompt-mini2", "my.safetensors")
    with pytest.raises(ValueError, match="protocol must be one of P1, P2, P3, P4"):
        ExperimentConfig.for_preset("mini-hard-ood", protocol="P9")


def test_v1_presets_are_configured_as_the_paper_experiments_they_mirror(tmp_path):
    hard = ExperimentConfig.for_preset("mini-hard-ood", data_root=str(tmp_path), benchmark="mini-hard")
    assert (
        hard.base_preset == "hard-ood"
        and (hard.backbone.model, hard.backbone.pretrained) == ("negprompt-mini", "auto")
        and hard.data.benchmark == "mini-hard"
        and hard.data.protocol is None
    )
    with pytest.raises(ValueError, match="protocol cannot be given"):
        ExperimentConfig.for_preset("mini-hard-ood", benchmark="mini-hard", protocol="P1")
    ov = ExperimentConfig.for_preset("mini-open-vocab", data_root=str(tmp_path), benchmark="mini")
    assert ov.base_preset == "open-vocab" and ov.data.open_vocab_fraction == 0.5
    assert ov.data.open_vocab_mode == "first" and ov.backbone.model == "negprompt-mini"
    conv = ExperimentConfig.for_preset("mini-conventional", data_root=str(tmp_path), benchmark="mini")
    with pytest.raises(ValueError, match="open_vocab_fraction only applies"):
        ExperimentConfig.for_preset("mini-conventional", benchmark="mini", open_vocab_fraction=0.5)
    data = load_data(conv)
    assert len(data.class_names) == 10 and set(data.ood) == {"mini/digits", "mini/shapes", "mini/textures"}
    assert data.ood["mini/shapes"].class_names[0] == "red circle"  # OOD sets keep their classes
    data = load_data(ov)
    assert data.train_classes == [0, 1, 2, 3, 4] and len(data.id_test.class_names) == 10
    data = load_data(hard)
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
    args = ["run", "mini-hard-ood", "--benchmark", "mini-hard", "--seeds", "0", "1", "--epochs", "2", "--out", str(out),
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
