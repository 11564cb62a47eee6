"""Reproducibility, checkpoints, resume (bit-identical), NaN stop, and resume mismatches."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from negprompt.train import (
    NonFiniteLossError,
    ResumeError,
    TrainConfig,
    load_checkpoint,
    train_prompts,
)

NAMES = ["cat", "dog", "red car", "airplane", "tree frog", "house"]


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(1)
    y = torch.arange(len(NAMES)).repeat(5)
    views = [F.normalize(torch.randn(len(y), 64, generator=gen), dim=-1) for _ in range(2)]
    val_y = torch.arange(len(NAMES)).repeat(2)
    val_x = F.normalize(torch.randn(len(val_y), 64, generator=gen), dim=-1)
    return {"views": views, "labels": y, "val": (val_x, val_y)}


def run(backbone, data, cfg, **kw):
    return train_prompts(
        backbone,
        NAMES,
        data["views"],
        data["labels"],
        cfg,
        val_features=data["val"][0],
        val_labels=data["val"][1],
        progress=False,
        **kw,
    )


# momentum and weight decay make the optimizer state matter; two views and class subsets use the RNG
STAGE2 = TrainConfig(
    stage=2, epochs=4, batch_size=8, lr=0.3, momentum=0.9, weight_decay=1e-3, n_views=2, class_subset_size=3
)


@pytest.mark.parametrize("stage", [1, 2])
def test_same_seed_same_contexts(tiny_backbone, data, stage):
    cfg = dataclasses.replace(STAGE2, stage=stage, epochs=2)
    a, b = run(tiny_backbone, data, cfg), run(tiny_backbone, data, cfg)
    ctx = "pos_ctx" if stage == 1 else "neg_ctx"
    assert torch.equal(getattr(a.learner, ctx), getattr(b.learner, ctx))
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    c = run(tiny_backbone, data, dataclasses.replace(cfg, seed=7))
    assert not torch.equal(getattr(a.learner, ctx), getattr(c.learner, ctx))


def test_interrupted_and_resumed_run_is_bit_identical(tiny_backbone, data, tmp_path):
    whole = run(tiny_backbone, data, STAGE2, checkpoint_dir=tmp_path / "whole")
    part = run(tiny_backbone, data, STAGE2, checkpoint_dir=tmp_path / "split", stop_after_epoch=2)
    assert not part.completed and len(part.history) == 2
    state = load_checkpoint(tmp_path / "split")
    assert state["epoch"] == 2 and state["backbone_identity"] == tiny_backbone.identity()
    assert state["config"] == STAGE2.to_dict() and state["class_names"] == NAMES
    assert not torch.equal(state["neg_ctx"], whole.learner.neg_ctx)
    resumed = run(tiny_backbone, data, STAGE2, checkpoint_dir=tmp_path / "split", resume=True)
    assert resumed.completed and resumed.selected == whole.selected == "val"
    assert resumed.selected_epoch == whole.selected_epoch
    assert torch.equal(resumed.learner.neg_ctx, whole.learner.neg_ctx)
    assert torch.equal(resumed.learner.pos_ctx, whole.learner.pos_ctx)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history)
    assert not list((tmp_path / "split").glob("*.tmp"))  # atomic writes leave no temporary files
    # the last-epoch contexts are in the checkpoint too
    last = load_checkpoint(tmp_path / "whole")
    assert last["epoch"] == STAGE2.epochs


def test_stage1_resume_with_warmup_is_bit_identical(tiny_backbone, data, tmp_path):
    cfg = TrainConfig(stage=1, epochs=3, batch_size=8, lr=0.05, momentum=0.9, warmup_epochs=1, n_views=2)
    whole = run(tiny_backbone, data, cfg)
    run(tiny_backbone, data, cfg, checkpoint_dir=tmp_path, stop_after_epoch=1)
    resumed = run(tiny_backbone, data, cfg, checkpoint_dir=tmp_path, resume=True)
    assert torch.equal(resumed.learner.pos_ctx, whole.learner.pos_ctx)
    assert resumed.history[0]["lr"] == pytest.approx(1e-5)


def test_existing_checkpoint_without_resume_is_refused(tiny_backbone, data, tmp_path):
    cfg = dataclasses.replace(STAGE2, epochs=1)
    run(tiny_backbone, data, cfg, checkpoint_dir=tmp_path)
    with pytest.raises(ResumeError, match="resume=True"):
        run(tiny_backbone, data, cfg, checkpoint_dir=tmp_path)


def test_resume_with_other_config_names_the_difference(tiny_backbone, data, tmp_path):
    run(tiny_backbone, data, STAGE2, checkpoint_dir=tmp_path, stop_after_epoch=1)
    with pytest.raises(ResumeError, match=r"lr: 0\.3 in the checkpoint, 0\.1 now"):
        run(tiny_backbone, data, dataclasses.replace(STAGE2, lr=0.1), checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ResumeError, match="class 0 is 'cat' in the checkpoint, 'lynx' now"):
        train_prompts(
            tiny_backbone,
            ["lynx", *NAMES[1:]],
            data["views"],
            data["labels"],
            STAGE2,
            val_features=data["val"][0],
            val_labels=data["val"][1],
            checkpoint_dir=tmp_path,
            resume=True,
            progress=False,
        )


def test_resume_with_other_backbone_names_it(tiny_backbone, data, tmp_path):
    run(tiny_backbone, data, STAGE2, checkpoint_dir=tmp_path, stop_after_epoch=1)
    other = dataclasses.replace(tiny_backbone, weights="other-weights.pt", weights_fingerprint="other")
    with pytest.raises(
        ResumeError, match="backbone weights: 'random' in the checkpoint, 'other-weights.pt' now"
    ):
        run(other, data, STAGE2, checkpoint_dir=tmp_path, resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_backbone, data, tmp_path):
    cfg = dataclasses.replace(STAGE2, epochs=3)
    run(tiny_backbone, data, cfg, checkpoint_dir=tmp_path, stop_after_epoch=1)
    good = load_checkpoint(tmp_path)
    poisoned = dict(data)
    poisoned["views"] = [v.clone() for v in data["views"]]
    for v in poisoned["views"]:
        v[3] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"at epoch 2, step \d+/4.*after epoch 1.*checkpoint\.pt"):
        run(tiny_backbone, poisoned, cfg, checkpoint_dir=tmp_path, resume=True)
    kept = load_checkpoint(tmp_path)
    assert kept["epoch"] == 1
    assert torch.equal(kept["neg_ctx"], good["neg_ctx"]) and torch.isfinite(kept["neg_ctx"]).all()


def test_nan_in_first_epoch_without_checkpoint(tiny_backbone, data):
    views = [v.clone() for v in data["views"]]
    views[0][:] = float("inf")
    views[1][:] = float("inf")
    cfg = dataclasses.replace(STAGE2, stage=1)
    with pytest.raises(NonFiniteLossError, match="stage 1: the loss is nan at epoch 1, step 1/4"):
        run(tiny_backbone, {**data, "views": views}, cfg)


def test_on_epoch_hook_stops_and_stop_after_is_a_ceiling(tiny_backbone, data, tmp_path):
    cfg = dataclasses.replace(STAGE2, epochs=3)
    seen = []
    part = run(tiny_backbone, data, cfg, checkpoint_dir=tmp_path, on_epoch=lambda r: seen.append(r) or True)
    assert not part.completed and [r["epoch"] for r in seen] == [1] and part.selected == "last"
    # resuming with a ceiling already reached trains nothing
    again = run(tiny_backbone, data, cfg, checkpoint_dir=tmp_path, resume=True, stop_after_epoch=1)
    assert len(again.history) == 1 and not again.completed
    assert torch.equal(again.learner.neg_ctx, part.learner.neg_ctx)
