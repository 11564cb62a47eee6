"""The two training stages on synthetic features from the tiny random CLIP."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder
from negprompt.train import (
    PRESETS,
    TrainConfig,
    compute_loss,
    local_text_features,
    lr_factor,
    make_config,
    sample_classes,
    train_prompts,
    train_step,
)
from tests.conftest import write_images

NAMES = ["cat", "dog", "red car", "airplane", "tree frog", "house", "ship", "truck", "bird", "horse"]


@pytest.fixture(scope="module")
def planted(tiny_backbone):
    """Image features planted around the text features of a hidden random context."""
    enc = TextEncoder(tiny_backbone)
    hidden = PromptLearner(enc, PromptConfig(init=""), seed=123)
    with torch.no_grad():
        text = hidden.positive_features(hidden.class_names(NAMES))
    gen = torch.Generator().manual_seed(0)

    def make(per_class: int):
        y = torch.arange(len(NAMES)).repeat(per_class)
        x = F.normalize(text[y] + 0.08 * torch.randn(len(y), text.shape[1], generator=gen), dim=-1)
        return x, y

    return {"train": make(8), "val": make(3), "held_out": make(20), "text": text}


def accuracy(learner, features, labels) -> float:
    with torch.no_grad():
        pos = learner.positive_features(learner.class_names(NAMES))
    return float(((features @ pos.T).argmax(1) == labels).float().mean())


def test_stage1_learns_the_planted_context(tiny_backbone, planted):
    start = PromptLearner(TextEncoder(tiny_backbone), PromptConfig())
    before = accuracy(start, *planted["held_out"])
    cfg = TrainConfig(stage=1, epochs=8, batch_size=16, lr=0.1, select="val")
    result = train_prompts(
        tiny_backbone,
        NAMES,
        *planted["train"],
        cfg,
        val_features=planted["val"][0],
        val_labels=planted["val"][1],
        progress=False,
    )
    after = accuracy(result.learner, *planted["held_out"])
    assert after >= before + 0.3, (before, after)
    assert result.selected == "val"
    best = max(result.history, key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert result.selected_epoch == best["epoch"]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.summary()["selection_criterion"] == "val_acc"


def test_stage2_freezes_positives_and_loss_falls(tiny_backbone, planted):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig())
    pos_before = learner.pos_ctx.detach().clone()
    cfg = TrainConfig(stage=2, epochs=6, batch_size=20, lr=0.5, select="last")
    result = train_prompts(tiny_backbone, NAMES, *planted["train"], cfg, learner=learner, progress=False)
    assert result.learner is learner
    assert torch.equal(learner.pos_ctx, pos_before)
    assert learner.pos_ctx.grad is None
    assert learner.neg_ctx.grad is not None and learner.neg_ctx.grad.abs().sum() > 0
    assert learner.pos_ctx.requires_grad and learner.neg_ctx.requires_grad  # flags restored
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < losses[0] - 1e-3, losses
    assert {"img", "pd", "nn"} <= set(result.history[0])
    # the negatives moved away from the positive context they were initialised from
    assert float((learner.neg_ctx - learner.pos_ctx).detach().abs().max()) > 1e-2


def test_stage2_validation_criterion_and_selection(tiny_backbone, planted):
    cfg = TrainConfig(stage=2, epochs=3, batch_size=40, lr=0.5, select="val")
    result = train_prompts(
        tiny_backbone,
        NAMES,
        *planted["train"],
        cfg,
        val_features=planted["val"][0],
        val_labels=planted["val"][1],
        progress=False,
    )
    vals = [r["val_loss"] for r in result.history]
    assert result.selected == "val"
    assert result.selected_epoch == 1 + int(np.argmin(vals))
    assert result.summary()["selection_criterion"] == "val_loss"


def test_select_val_without_validation_data_is_an_error(tiny_backbone, planted):
    with pytest.raises(ValueError, match="select='last'"):
        train_prompts(tiny_backbone, NAMES, *planted["train"], TrainConfig(epochs=1), progress=False)


def test_text_fn_is_replaceable(tiny_backbone, planted):
    calls = []

    def counting(learner, classes, class_idx, kind):
        calls.append((kind, len(class_idx)))
        return local_text_features(learner, classes, class_idx, kind)

    cfg = TrainConfig(stage=2, epochs=1, batch_size=40, select="last", class_subset_size=4)
    train_prompts(tiny_backbone, NAMES, *planted["train"], cfg, text_fn=counting, progress=False)
    assert calls[0] == ("pos", len(NAMES))  # the frozen positives, once
    steps = [c for c in calls[1:] if c[0] == "neg"]
    assert len(steps) == 2 and all(n >= 4 for _, n in steps)
    assert not [c for c in calls[1:] if c[0] == "pos"]


def test_sample_classes_keeps_batch_labels():
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([7, 2, 2, 9])
    idx = sample_classes(labels, 20, 6, gen)
    assert len(idx) == 6 and {2, 7, 9} <= set(idx.tolist())
    assert torch.equal(idx, idx.sort().values)
    assert torch.equal(sample_classes(labels, 20, None, gen), torch.arange(20))
    assert len(sample_classes(torch.arange(8), 20, 3, gen)) == 8  # never drops a label


def test_class_subset_loss_uses_only_sampled_columns(tiny_backbone, planted):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig())
    classes = learner.class_names(NAMES)
    x, y = planted["train"][0][:6], planted["train"][1][:6]
    with torch.no_grad():
        pos = learner.positive_features(classes)
    cfg = TrainConfig(stage=2)
    sub = torch.tensor(sorted({*y.tolist(), 5}))
    got = compute_loss(learner, classes, x, y, cfg, 2.0, class_idx=sub, pos_text=pos)
    # the same loss computed on a problem that only has the sampled classes
    names = [NAMES[i] for i in sub]
    remap = {c: i for i, c in enumerate(sub.tolist())}
    ref = compute_loss(
        learner,
        learner.class_names(names),
        x,
        torch.tensor([remap[v] for v in y.tolist()]),
        cfg,
        2.0,
        pos_text=pos[sub],
    )
    for k in ref:
        assert float(got[k]) == pytest.approx(float(ref[k]), rel=1e-5, abs=1e-7)


def test_train_step_without_optimizer_gives_gradients(tiny_backbone, planted):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig())
    classes = learner.class_names(NAMES)
    x, y = planted["train"][0][:8], planted["train"][1][:8]
    values = train_step(learner, classes, x, y, TrainConfig(stage=1), 2.0)
    assert math.isfinite(values["total"]) and learner.pos_ctx.grad is not None


def test_lr_schedule_cosine_with_warmup():
    cfg = TrainConfig(lr=0.1, epochs=10, warmup_epochs=1, warmup_lr=1e-5)
    assert lr_factor(0, 100, 10, cfg) == pytest.approx(1e-4)
    assert lr_factor(9, 100, 10, cfg) == pytest.approx(1e-4)
    assert lr_factor(10, 100, 10, cfg) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, cfg) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, cfg) == pytest.approx(0.0, abs=1e-12)
    factors = [lr_factor(s, 100, 0, TrainConfig()) for s in range(100)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))  # one decay, no restarts


def test_presets():
    coop = make_config("coop", stage=1)
    assert (coop.lr, coop.momentum, coop.weight_decay, coop.batch_size, coop.epochs) == (
        0.002,
        0.9,
        5e-4,
        32,
        50,
    )
    assert (coop.warmup_epochs, coop.warmup_lr, coop.schedule) == (1, 1e-5, "cosine")
    neg = make_config("negprompt")
    assert (neg.lr, neg.momentum, neg.weight_decay, neg.batch_size, neg.epochs) == (0.1, 0.0, 0.0, 64, 100)
    assert set(PRESETS) == {"negprompt", "coop"}
    with pytest.raises(ValueError, match="coop"):
        make_config("nope")
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lion")


def test_views_and_mismatched_view_count(tiny_backbone, planted):
    x, y = planted["train"]
    views = [x, F.normalize(x + 0.01, dim=-1)]
    cfg = TrainConfig(stage=1, epochs=1, batch_size=40, n_views=2, select="last")
    result = train_prompts(tiny_backbone, NAMES, views, y, cfg, progress=False)
    assert result.completed
    with pytest.raises(ValueError, match="n_views"):
        train_prompts(tiny_backbone, NAMES, views, y, TrainConfig(epochs=1, select="last"), progress=False)


def test_amp_bf16_runs_on_cpu(tiny_backbone, planted):
    cfg = TrainConfig(stage=2, epochs=1, batch_size=40, amp="bf16", select="last")
    result = train_prompts(tiny_backbone, NAMES, *planted["train"], cfg, progress=False)
    assert math.isfinite(result.history[0]["loss"])


def test_stage2_keeps_stage1_positives_and_resumes_to_the_same_contexts(tiny_backbone, planted, tmp_path):
    val = dict(val_features=planted["val"][0], val_labels=planted["val"][1], progress=False)

    def both(resume: bool):
        cfg = TrainConfig(epochs=2, batch_size=40, select="val")
        first = train_prompts(tiny_backbone, NAMES, *planted["train"], cfg,
                              checkpoint_dir=tmp_path / "stage1", resume=resume, **val)  # fmt: skip
        after_stage1 = first.learner.pos_ctx.detach().clone()
        second = train_prompts(tiny_backbone, NAMES, *planted["train"], replace(cfg, stage=2),
                               learner=first.learner, checkpoint_dir=tmp_path / "stage2", resume=resume, **val)  # fmt: skip
        assert torch.equal(second.learner.pos_ctx, after_stage1)  # stage 2 trains the negatives only
        return first, second

    first, second = both(resume=False)
    assert (first.stage, second.stage) == (1, 2)
    assert (tmp_path / "stage1" / "checkpoint.pt").is_file() and (
        tmp_path / "stage2" / "checkpoint.pt"
    ).is_file()
    fresh = PromptLearner(TextEncoder(tiny_backbone), PromptConfig())
    assert not torch.equal(second.learner.pos_ctx, fresh.pos_ctx)  # stage 1 trained it
    # resuming a finished pair trains nothing and gives the same contexts
    pos, neg = second.learner.pos_ctx.detach().clone(), second.learner.neg_ctx.detach().clone()
    again = both(resume=True)
    assert torch.equal(again[1].learner.pos_ctx, pos) and torch.equal(again[1].learner.neg_ctx, neg)


def test_online_augment_mode(tiny_backbone, tmp_path):
    from negprompt.data.folders import image_folder

    for k, name in enumerate(["cat", "dog", "bird"]):
        write_images(tmp_path / "img" / name, 3, seed=k, color=(80 * k, 40, 200 - 60 * k))
    images = image_folder(tmp_path / "img")
    cfg = TrainConfig(stage=1, epochs=2, batch_size=4, mode="online-augment", select="val", lr=0.5)
    runs = [
        train_prompts(
            tiny_backbone, list(images.class_names), images, None, cfg, val_features=images, progress=False
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0].learner.pos_ctx, runs[1].learner.pos_ctx)  # seeded augmentation
    assert len(runs[0].history) == 2 and "val_acc" in runs[0].history[0]
    start = PromptLearner(TextEncoder(tiny_backbone), PromptConfig())
    assert not torch.equal(runs[0].learner.pos_ctx, start.pos_ctx)


@pytest.mark.parametrize("mode", ["length", "full"])
def test_the_configured_encode_mode_reaches_the_text_encoder(tiny_backbone, planted, monkeypatch, mode):
    import negprompt.train.loop as loop

    seen = []
    real = loop.local_text_features

    def spy(*args, mode="length"):
        seen.append(mode)
        return real(*args, mode=mode)

    monkeypatch.setattr(loop, "local_text_features", spy)
    cfg = TrainConfig(stage=1, epochs=1, batch_size=40, select="last", encode_mode=mode)
    train_prompts(tiny_backbone, NAMES, *planted["train"], cfg, progress=False)
    assert seen and set(seen) == {mode}
