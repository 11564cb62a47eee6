"""The training loop of both stages: epochs of shuffled batches, validation, selection, checkpoints."""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import torch

from negprompt.backbone import Backbone
from negprompt.distributed import is_main
from negprompt.progress import tqdm
from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder

from .checkpoint import ResumeError, check_resumable, checkpoint_path, load_checkpoint, save_checkpoint
from .config import TrainConfig, lr_factor
from .result import TrainResult, format_epoch, run_label
from .sources import FeatureSource, OnlineSource, as_labels, as_views, encode_image_set
from .step import NonFiniteLossError, TextFeatureFn, local_text_features, sample_classes, train_step
from .validate import selection_key, validate

log = logging.getLogger("negprompt.train")
_NAMES = {"total": "loss"}  # loss terms as they appear in epoch records


def train_prompts(
    backbone: Backbone,
    class_names: Sequence[str],
    features: Any,
    labels: Any = None,
    config: TrainConfig | None = None,
    *,
    val_features: Any = None,
    val_labels: Any = None,
    learner: PromptLearner | None = None,
    prompt_config: PromptConfig | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    init_negatives: bool = True,
    stop_after_epoch: int | None = None,
    on_epoch: Callable[[dict], bool | None] | None = None,
    text_fn: TextFeatureFn | None = None,
    progress: bool = True,
    local_features: Any = None,
) -> TrainResult:
    """Train one stage on image features (all CLIP weights frozen).

    Stage 1 (CoOp) learns the positive context with CE over the C positive logits. Stage 2
    (NegPrompt) freezes the positive context, encodes its C text features once, initialises the
    negative contexts from it (``init_negatives``) and learns them with L₂ (see
    :mod:`negprompt.losses`). Every step takes a shuffled batch with a random feature view per
    sample, encodes the prompts of the step's classes and makes one optimizer step; the learning
    rate follows :func:`negprompt.train.config.lr_factor`. All randomness comes from one generator
    seeded with ``config.seed`` and saved in the checkpoints.

    Args:
        backbone: the frozen CLIP.
        class_names: the C class names, in label order.
        features: ``[N, D]`` cached features, or a list of ``n_views`` views ``[V][N, D]``; with
            ``config.mode == "online-augment"`` an ImageSet-like object (``.abspath(i)``, ``.labels``).
        labels: ``[N]`` labels in 0 … C−1 (taken from the image set in online mode).
        config: training settings (default :class:`TrainConfig`).
        val_features, val_labels: ID validation data (features ``[N', D]`` or an ImageSet-like
            object); required with ``select="val"``. Never pass test or OOD data.
        learner: contexts to start from (stage 2: the stage-1 learner); default a fresh one.
        prompt_config: shape of a fresh learner.
        checkpoint_dir: folder of the checkpoint written after every epoch.
        resume: continue from the checkpoint in ``checkpoint_dir`` (fresh start when there is none).
        init_negatives: stage 2, fresh start: reset the negatives to the positives plus noise.
        stop_after_epoch: train no further than this many finished epochs (the result is then
            incomplete; resume it later).
        on_epoch: called with every epoch record; returning True stops training.
        text_fn: computes the learned text features of a step's classes.
        progress: show a progress bar per epoch.
        local_features: ``[N, P, D]`` local features of the training images (view 0), for LoCoOp
            (``config.locoop_weight`` > 0, cached mode, one view).

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        ResumeError: the checkpoint belongs to another run, or exists and ``resume`` is False.
    """
    config = config or TrainConfig()
    if config.device is not None and torch.device(config.device) != backbone.device:
        raise ValueError(
            f"config.device={config.device!r} but the backbone lives on {backbone.device}; load it there"
        )
    names = [str(n) for n in class_names]
    if learner is None:
        learner = PromptLearner(
            TextEncoder(backbone), prompt_config or PromptConfig(), n_classes=len(names), seed=config.seed
        )
    elif prompt_config is not None and asdict(prompt_config) != asdict(learner.config):
        raise ValueError("pass either a learner or a prompt_config, not both with different settings")
    if config.mode == "online-augment":
        if config.locoop_weight:
            raise ValueError("LoCoOp trains on cached features; use mode='cached'")
        source = OnlineSource(features, backbone, len(names))
    else:
        if config.locoop_weight and (local_features is None or config.n_views != 1):
            raise ValueError("LoCoOp (locoop_weight > 0) needs local_features [N, P, D] and n_views = 1")
        source = FeatureSource(features, labels, len(names), backbone.device, local_features)
        if source.n_views != config.n_views:
            raise ValueError(
                f"config.n_views={config.n_views} but {source.n_views} feature view(s) were given"
            )
        if source.views.shape[-1] != backbone.embed_dim:
            raise ValueError(
                f"features have width {source.views.shape[-1]}, the backbone {backbone.embed_dim}"
            )
    if len(source) == 0:
        raise ValueError("no training features")
    val = _val_data(val_features, val_labels, config, backbone, len(names))

    if text_fn is None:  # encode on this process, in the configured mode
        text_fn = functools.partial(local_text_features, mode=config.encode_mode)
    trainer = _Trainer(backbone, learner, learner.class_names(names), source, val, config, text_fn)
    flags = {p: p.requires_grad for p in learner.parameters()}
    for p in learner.parameters():
        p.requires_grad_(p is trainer.trained)
    try:
        trainer.start(checkpoint_dir, resume, init_negatives)
        last = config.epochs if stop_after_epoch is None else min(config.epochs, stop_after_epoch)
        for epoch in range(trainer.done, last):
            record = trainer.epoch(epoch, progress)
            label = run_label(config.stage, config.locoop_weight > 0)
            log.info(format_epoch(record, config.stage, config.epochs, label))
            if on_epoch is not None and on_epoch(record):
                break
        return trainer.result(completed=trainer.done >= config.epochs)
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


def _val_data(val_features, val_labels, config, backbone, n_classes):
    if val_features is None:
        if config.select == "val":
            raise ValueError(
                "select='val' needs validation features and labels (val_features, val_labels); "
                "pass them, or set select='last'"
            )
        return None
    if hasattr(val_features, "abspath"):
        labels = val_features.labels if val_labels is None else val_labels
        feats = encode_image_set(backbone, val_features)
    else:
        feats, labels = as_views(val_features, backbone.device)[0], val_labels
    if len(feats) == 0:
        if config.select == "val":
            raise ValueError("the validation set is empty; give validation images or set select='last'")
        return None
    return feats, as_labels(labels, len(feats), n_classes, "validation labels")


class _Trainer:
    """The state of one stage: contexts, optimizer, schedule, generator, history, best epoch."""

    def __init__(self, backbone, learner, classes, source, val, config: TrainConfig, text_fn):
        self.backbone, self.learner, self.classes, self.source = backbone, learner, classes, source
        self.val, self.config, self.text_fn = val, config, text_fn
        self.stage = config.stage
        self.logit_scale = float(backbone.model.logit_scale)
        self.trained = learner.pos_ctx if self.stage == 1 else learner.neg_ctx
        self.steps = math.ceil(len(source) / config.batch_size)
        total, warmup = self.steps * config.epochs, self.steps * config.warmup_epochs
        self.optimizer = _optimizer(self.trained, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, total, warmup, config)
        )
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict] = []
        self.best: dict | None = None
        self.done = 0
        self.folder = None
        self.pos_text = None
        self.meta = {
            "config": config.to_dict(),
            "prompt_config": asdict(learner.config),
            "backbone_identity": backbone.identity(),
            "class_names": list(classes.names),
        }

    def start(self, folder, resume: bool, init_negatives: bool) -> None:
        """Restore the checkpoint of ``folder`` (with ``resume``) or start afresh."""
        self.folder = folder
        state = load_checkpoint(folder) if folder is not None else None
        if state is not None and not resume:
            raise ResumeError(
                f"{checkpoint_path(folder)} already exists; pass resume=True (--resume) to continue it, "
                "or choose another folder"
            )
        learner = self.learner
        if state is not None:
            check_resumable(state, folder, **self.meta, pos_ctx=learner.pos_ctx if self.stage == 2 else None)
            with torch.no_grad():
                learner.pos_ctx.copy_(state["pos_ctx"])
                learner.neg_ctx.copy_(state["neg_ctx"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.generator.set_state(state["generator"])
            self.history, self.best, self.done = list(state["history"]), state["best"], int(state["epoch"])
            log.info(
                "stage %d: resuming from %s after epoch %d", self.stage, checkpoint_path(folder), self.done
            )
        elif self.stage == 2 and init_negatives:
            learner.init_negatives(seed=self.config.seed)
        if self.stage == 2:
            with torch.no_grad():
                everything = torch.arange(len(self.classes))
                self.pos_text = self.text_fn(learner, self.classes, everything, "pos").float().detach()

    def epoch(self, epoch: int, progress: bool) -> dict:
        """Train one epoch, validate, update the best contexts, write the checkpoint; the epoch's record."""
        cfg, t0 = self.config, time.perf_counter()
        perm = torch.randperm(len(self.source), generator=self.generator)
        sums: dict[str, float] = {}
        desc = f"{run_label(self.stage, cfg.locoop_weight > 0)} epoch {epoch + 1}/{cfg.epochs}"
        bar = tqdm(range(self.steps), desc=desc, leave=False, disable=not progress, unit="step")
        for s in bar:
            idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            feats = self.source.batch(idx, self.generator)
            labels = self.source.labels[idx].to(self.backbone.device)
            class_idx = sample_classes(labels, len(self.classes), cfg.class_subset_size, self.generator)
            lr = self.optimizer.param_groups[0]["lr"]
            try:
                values = train_step(
                    self.learner,
                    self.classes,
                    feats,
                    labels,
                    cfg,
                    self.logit_scale,
                    self.optimizer,
                    class_idx=None if len(class_idx) == len(self.classes) else class_idx,
                    pos_text=self.pos_text,
                    text_fn=self.text_fn,
                    where=f"at epoch {epoch + 1}, step {s + 1}/{self.steps}",
                    local_features=self.source.local_batch(idx) if cfg.locoop_weight else None,
                )
            except NonFiniteLossError as exc:
                kept = (
                    f"the last good checkpoint (after epoch {self.done}) is kept at {checkpoint_path(self.folder)}"
                    if self.folder is not None and self.done > 0
                    else "no checkpoint was written before it"
                )
                raise NonFiniteLossError(f"{exc} Training stopped; {kept}.") from exc
            self.scheduler.step()
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            bar.set_postfix(loss=f"{values['total']:.4f}", refresh=False)  # redrawn at tqdm's own pace
        record = {"epoch": epoch + 1, **{_NAMES.get(k, k): v / len(self.source) for k, v in sums.items()}}
        if self.val is not None:
            vals = validate(
                self.learner, self.classes, *self.val, cfg, self.logit_scale,
                pos_text=self.pos_text, text_fn=self.text_fn,
            )  # fmt: skip
            record.update(vals)
            key = list(selection_key(self.stage, vals))
            if self.best is None or key > self.best["key"]:
                self.best = {"epoch": epoch + 1, "key": key, **_contexts(self.learner)}
        record.update(lr=lr, seconds=time.perf_counter() - t0)
        self.history.append(record)
        self.done = epoch + 1
        if self.folder is not None and is_main():  # one writer when ranks share the folder
            self._save()
        return record

    def _save(self) -> None:
        save_checkpoint(
            self.folder,
            {
                **self.meta,
                "stage": self.stage,
                "epoch": self.done,
                **_contexts(self.learner),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "generator": self.generator.get_state(),
                "history": self.history,
                "best": self.best,
            },
        )

    def result(self, completed: bool) -> TrainResult:
        """The result; a completed run with ``select="val"`` loads the best epoch's contexts."""
        file = checkpoint_path(self.folder) if self.folder is not None else None
        result = TrainResult(
            self.learner, self.config, self.history, "last", self.done, completed, file, self.steps
        )
        if completed and self.config.select == "val" and self.best is not None:
            with torch.no_grad():
                self.learner.pos_ctx.copy_(self.best["pos_ctx"])
                self.learner.neg_ctx.copy_(self.best["neg_ctx"])
            result.selected, result.selected_epoch = "val", int(self.best["epoch"])
        return result


def _contexts(learner: PromptLearner) -> dict:
    return {
        "pos_ctx": learner.pos_ctx.detach().cpu().clone(),
        "neg_ctx": learner.neg_ctx.detach().cpu().clone(),
    }


def _optimizer(param: torch.nn.Parameter, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            [param], lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW([param], lr=config.lr, weight_decay=config.weight_decay)
