"""Validation criteria: computed on in-distribution validation images only, never on test or OOD data.

- Stage 1: top-1 accuracy of the positive prompts on the validation features (``val_acc``, higher is
  better; ties are broken by the lower validation cross-entropy ``val_loss``).
- Stage 2: the stage-2 loss L₂ (same L_img variant and weights as training, all C classes) on the
  validation features (``val_loss``, lower is better). The positive prompts are frozen in stage 2,
  so the validation accuracy cannot change; L₂ measures how far the negative prompts are from the
  validation images of other classes and from their own positives, without any OOD data.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor

from negprompt.losses import stage1_loss, stage2_loss
from negprompt.prompts import ClassNames, PromptLearner

from .config import TrainConfig
from .step import TextFeatureFn, local_text_features

CRITERION = {1: "val_acc", 2: "val_loss"}
"""The validation value each stage selects on."""


@torch.no_grad()
def validate(
    learner: PromptLearner,
    classes: ClassNames,
    features: Tensor,
    labels: Tensor,
    config: TrainConfig,
    logit_scale: float,
    *,
    pos_text: Tensor | None = None,
    text_fn: TextFeatureFn = local_text_features,
) -> dict[str, float]:
    """Validation values of the current contexts.

    Args:
        features: ``[N, D]`` validation image features. labels: ``[N]``.
        pos_text: stage 2: the frozen positive features ``[C, D]``.

    Returns:
        Stage 1 ``{"val_acc", "val_loss"}``; stage 2 ``{"val_loss", "val_img", "val_pd", "val_nn"}``.
    """
    idx = torch.arange(len(classes))
    labels = labels.to(features.device)
    dtype = config.amp_dtype(features.device)
    autocast = (
        torch.autocast(features.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    )
    if config.stage == 1:
        with autocast:
            pos = text_fn(learner, classes, idx, "pos").float()
        pred = (F.normalize(features, dim=-1) @ pos.T).argmax(dim=1)
        return {
            "val_acc": float((pred == labels).float().mean()),
            "val_loss": float(stage1_loss(features, pos, labels, logit_scale)),
        }
    with autocast:
        neg = text_fn(learner, classes, idx, "neg").float()
    terms = stage2_loss(
        features,
        pos_text.float(),
        neg,
        labels,
        logit_scale,
        img_loss=config.img_loss,
        w_img=config.w_img,
        w_pd=config.w_pd,
        w_nn=config.w_nn,
    )
    return {
        "val_loss": float(terms["total"]),
        "val_img": float(terms["img"]),
        "val_pd": float(terms["pd"]),
        "val_nn": float(terms["nn"]),
    }


def selection_key(stage: int, values: dict[str, float]) -> tuple[float, ...]:
    """Larger is better: stage 1 ``(val_acc, −val_loss)``, stage 2 ``(−val_loss,)``."""
    if stage == 1:
        return (values["val_acc"], -values["val_loss"])
    return (-values["val_loss"],)
