"""One training step: text features of the step's classes, the stage's loss, the update.

The text features are computed by a replaceable :data:`TextFeatureFn`, so that a distributed
version (prompt encoding sharded across ranks by class, features gathered with their gradients)
can be plugged into the same step.
"""

from __future__ import annotations

import contextlib
import math
from typing import Literal, Protocol

import torch
from torch import Tensor

from negprompt.locoop import default_top_k, locoop_ood_loss
from negprompt.losses import stage1_loss, stage2_loss
from negprompt.prompts import ClassNames, PromptLearner

from .config import TrainConfig


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped (the last good checkpoint is kept)."""


class TextFeatureFn(Protocol):
    """``fn(learner, classes, class_idx [C'], kind) -> [C', D] ("pos") or [C', M, D] ("neg")``."""

    def __call__(
        self, learner: PromptLearner, classes: ClassNames, class_idx: Tensor, kind: Literal["pos", "neg"]
    ) -> Tensor: ...


def local_text_features(
    learner: PromptLearner,
    classes: ClassNames,
    class_idx: Tensor,
    kind: Literal["pos", "neg"],
    mode: str = "prefix",
) -> Tensor:
    """Text features of the classes ``class_idx`` on this process (the default :data:`TextFeatureFn`).

    Returns:
        ``[C', D]`` positive features (``kind="pos"``) or ``[C', M, D]`` negative features.
    """
    if kind == "pos":
        return learner.positive_features(classes, class_idx, mode=mode)
    if kind == "neg":
        return learner.negative_features(classes, class_idx, mode=mode)
    raise ValueError(f"kind must be 'pos' or 'neg', got {kind!r}")


def sample_classes(labels: Tensor, n_classes: int, size: int | None, generator: torch.Generator) -> Tensor:
    """Sorted classes whose prompts one step encodes: all of them, or the batch's labels plus random ones.

    Args:
        labels: ``[B]`` labels of the batch.
        n_classes: C.
        size: None (all classes) or S; the result has ``max(S, number of distinct labels)`` classes
            when S < C.
        generator: CPU generator the random classes are drawn with.

    Returns:
        ``[C']`` int64 class indices (CPU), sorted.
    """
    if size is None or size >= n_classes:
        return torch.arange(n_classes)
    present = torch.zeros(n_classes, dtype=torch.bool)
    present[labels.cpu()] = True
    need = size - int(present.sum())
    if need > 0:
        others = (~present).nonzero(as_tuple=True)[0]
        pick = others[torch.randperm(len(others), generator=generator)[:need]]
        present[pick] = True
    return present.nonzero(as_tuple=True)[0]


def compute_loss(
    learner: PromptLearner,
    classes: ClassNames,
    features: Tensor,
    labels: Tensor,
    config: TrainConfig,
    logit_scale: float,
    *,
    class_idx: Tensor | None = None,
    pos_text: Tensor | None = None,
    text_fn: TextFeatureFn = local_text_features,
    local_features: Tensor | None = None,
) -> dict[str, Tensor]:
    """The stage's loss on one batch.

    Args:
        learner: the prompt contexts.
        classes: tokenised class names (C of them).
        features: ``[B, D]`` image features. labels: ``[B]`` in 0 … C−1.
        config: ``stage``, ``img_loss`` and the weights are used.
        logit_scale: log τ⁻¹ of the backbone.
        class_idx: ``[C']`` sorted classes to use (default all); must contain every label.
        pos_text: stage 2: ``[C, D]`` frozen positive features of *all* classes (encoded once).
        text_fn: computes the learned text features.
        local_features: ``[B, P, D]`` local features of the batch, for LoCoOp (stage 1 with
            ``config.locoop_weight`` > 0): L = CE + λ·L_ood (`negprompt.locoop.locoop_ood_loss`).

    Returns:
        ``{"total", ...}``: stage 1 ``{"total"}`` (the CE; LoCoOp adds ``"ce"`` and ``"ood"``);
        stage 2 ``{"total", "img", "pd", "nn"}``.
    """
    n_classes = len(classes)
    all_classes = class_idx is None
    if all_classes:
        class_idx = torch.arange(n_classes)
        local = labels
    else:
        lut = torch.full((n_classes,), -1, dtype=torch.long, device=labels.device)
        lut[class_idx.to(labels.device)] = torch.arange(len(class_idx), device=labels.device)
        local = lut[labels]
        if bool((local < 0).any()):
            raise ValueError("class_idx must contain every label of the batch")
    dtype = config.amp_dtype(features.device)
    autocast = (
        torch.autocast(features.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    )
    if config.stage == 1:
        with autocast:
            pos = text_fn(learner, classes, class_idx, "pos")
        ce = stage1_loss(features, pos.float(), local, logit_scale)
        if not config.locoop_weight:
            return {"total": ce}
        if local_features is None:
            raise ValueError("LoCoOp (locoop_weight > 0) needs the batch's local features [B, P, D]")
        top_k = config.locoop_top_k or default_top_k(n_classes)
        ood = locoop_ood_loss(local_features, pos.float(), local, logit_scale, min(top_k, len(class_idx)))
        return {"total": ce + config.locoop_weight * ood, "ce": ce, "ood": ood}
    if pos_text is None:
        raise ValueError("stage 2 needs the frozen positive text features pos_text [C, D]")
    with autocast:
        neg = text_fn(learner, classes, class_idx, "neg")
    return stage2_loss(
        features,
        (pos_text if all_classes else pos_text[class_idx.to(pos_text.device)]).float(),  # no copy per step
        neg.float(),
        local,
        logit_scale,
        img_loss=config.img_loss,
        w_img=config.w_img,
        w_pd=config.w_pd,
        w_nn=config.w_nn,
    )


def train_step(
    learner: PromptLearner,
    classes: ClassNames,
    features: Tensor,
    labels: Tensor,
    config: TrainConfig,
    logit_scale: float,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    class_idx: Tensor | None = None,
    pos_text: Tensor | None = None,
    text_fn: TextFeatureFn = local_text_features,
    where: str = "",
    local_features: Tensor | None = None,
) -> dict[str, float]:
    """Loss, backward pass and (with an ``optimizer``) one update on one batch.

    Without an optimizer it only computes the loss and its gradients (benchmarks).

    Raises:
        NonFiniteLossError: the loss is NaN or infinite (``where`` names the epoch/step); nothing
            is updated.

    Returns:
        The loss terms as floats.
    """
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
    losses = compute_loss(
        learner,
        classes,
        features,
        labels,
        config,
        logit_scale,
        class_idx=class_idx,
        pos_text=pos_text,
        text_fn=text_fn,
        local_features=local_features,
    )
    # one device-to-host copy for all terms (one sync per step on a GPU, not one per term)
    values = dict(zip(losses, torch.stack([v.detach().float() for v in losses.values()]).tolist()))
    if not math.isfinite(values["total"]):
        raise NonFiniteLossError(
            f"stage {config.stage}: the loss is {values['total']} {where}".rstrip()
            + " (terms: "
            + ", ".join(f"{k}={v:.4g}" for k, v in values.items())
            + "). Check the features for NaN/inf values or lower the learning rate."
        )
    losses["total"].backward()
    if optimizer is not None:
        optimizer.step()
    return values
