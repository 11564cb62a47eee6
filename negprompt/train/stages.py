"""Both stages in a row: CoOp positives first, then NegPrompt negatives on top of them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from negprompt.backbone import Backbone
from negprompt.prompts import PromptConfig, PromptLearner

from .config import TrainConfig, for_stage
from .loop import TrainResult, train_prompts
from .step import TextFeatureFn


def train_both(
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
    text_fn: TextFeatureFn | None = None,
    progress: bool = True,
) -> tuple[TrainResult, TrainResult]:
    """Stage 1 then stage 2 with the same settings (``config.stage`` is ignored).

    The negative contexts start from the selected stage-1 positive context plus noise. Checkpoints
    go to ``<checkpoint_dir>/stage1`` and ``<checkpoint_dir>/stage2``; with ``resume`` a finished
    stage 1 is read back from its checkpoint instead of being trained again.

    Returns:
        ``(stage-1 result, stage-2 result)``; both hold the same learner, which ends with the
        selected stage-1 positives and the selected stage-2 negatives.
    """
    config = config or TrainConfig()
    common = dict(
        val_features=val_features, val_labels=val_labels, resume=resume, text_fn=text_fn, progress=progress
    )
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    first = train_prompts(
        backbone,
        class_names,
        features,
        labels,
        for_stage(config, 1),
        learner=learner,
        prompt_config=prompt_config,
        checkpoint_dir=folder / "stage1" if folder else None,
        **common,
    )
    pos_after_stage1 = first.learner.pos_ctx.detach().clone()
    second = train_prompts(
        backbone,
        class_names,
        features,
        labels,
        for_stage(config, 2),
        learner=first.learner,
        checkpoint_dir=folder / "stage2" if folder else None,
        **common,
    )
    if not torch.equal(second.learner.pos_ctx.detach(), pos_after_stage1):
        raise RuntimeError("stage 2 changed the positive context; this is a bug")
    return first, second
