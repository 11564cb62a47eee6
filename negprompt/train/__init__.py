"""Training of the two NegPrompt stages on frozen image features (METHOD.md, Training).

Stage 1 (CoOp) learns the positive context; stage 2 (NegPrompt) freezes it and learns the M
negative contexts. Both run on cached image features (arrays ``[N, D]`` or several augmented views)
or, with ``mode="online-augment"``, on images encoded every step. Checkpoints are written after
every epoch and runs resume bit-identically; the selected contexts are the best epoch on ID
validation data or the last epoch.

    from negprompt.train import TrainConfig, train_prompts
    result = train_prompts(backbone, class_names, feats, labels, TrainConfig(stage=1, epochs=50),
                           val_features=val_feats, val_labels=val_labels, checkpoint_dir="run/ckpt")
"""

from __future__ import annotations

from .checkpoint import ResumeError, load_checkpoint, save_checkpoint
from .config import PRESETS, TrainConfig, for_stage, lr_factor, make_config
from .loop import train_prompts
from .result import TrainResult, format_epoch
from .step import (
    NonFiniteLossError,
    TextFeatureFn,
    compute_loss,
    local_text_features,
    sample_classes,
    train_step,
)
from .validate import CRITERION, validate

__all__ = [
    "CRITERION",
    "PRESETS",
    "NonFiniteLossError",
    "ResumeError",
    "TextFeatureFn",
    "TrainConfig",
    "TrainResult",
    "compute_loss",
    "for_stage",
    "format_epoch",
    "load_checkpoint",
    "local_text_features",
    "lr_factor",
    "make_config",
    "sample_classes",
    "save_checkpoint",
    "train_prompts",
    "train_step",
    "validate",
]
