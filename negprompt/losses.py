"""Training losses of the two NegPrompt stages: pure functions, each with its formula.

Li, Pang, Bai, Miao, Zheng, "Learning Transferable Negative Prompts for Out-of-Distribution
Detection", CVPR 2024 (stage 2); Zhou, Yang, Loy, Liu, "Learning to Prompt for Vision-Language
Models" (CoOp), IJCV 2022 (stage 1).

Notation: f an image feature, t_c the positive text feature of class c, t̃_{c,m} its m-th negative
text feature, s = cos(f, t) and logits z = τ⁻¹·s with τ⁻¹ = exp(logit_scale) (CLIP's learned scale,
about 100 for trained models). C classes, M negatives per class, K = C(1+M) text columns laid out
per class as ``[pos, neg_1 … neg_M]``; y is the label. Features need not be unit length: every
similarity is a cosine. Losses are computed in at least float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMG_LOSSES",
    "PD_SIGN",
    "extended_logits",
    "img_loss_msp",
    "img_loss_oe",
    "nn_loss",
    "pd_loss",
    "stage1_loss",
    "stage2_loss",
]


def _scale(logit_scale: float | Tensor) -> Tensor | float:
    """τ⁻¹ = exp(logit_scale)."""
    if isinstance(logit_scale, Tensor):
        return logit_scale.detach().float().exp()
    return math.exp(float(logit_scale))


def _unit(x: Tensor) -> Tensor:
    return F.normalize(x.float(), dim=-1)


def extended_logits(
    image_features: Tensor, pos_text: Tensor, neg_text: Tensor, logit_scale: float | Tensor
) -> Tensor:
    """Logits over all K = C(1+M) prompts, laid out per class as ``[pos, neg_1 … neg_M]``.

    z[b, c(1+M)] = τ⁻¹ cos(f_b, t_c) and z[b, c(1+M) + m] = τ⁻¹ cos(f_b, t̃_{c,m}) (m = 1 … M).

    Args:
        image_features: [B, D].
        pos_text: [C, D].
        neg_text: [C, M, D].
        logit_scale: log τ⁻¹ (CLIP's ``logit_scale`` parameter, before ``exp``).

    Returns:
        [B, K] logits.
    """
    texts = torch.cat([pos_text.unsqueeze(1), neg_text], dim=1)  # [C, 1+M, D]
    f = _unit(image_features)
    return _scale(logit_scale) * f @ _unit(texts).flatten(0, 1).T


def stage1_loss(
    image_features: Tensor, pos_text: Tensor, labels: Tensor, logit_scale: float | Tensor
) -> Tensor:
    """CoOp's loss: cross-entropy over the C positive logits.

    L₁ = mean_b −log( e^{z_{b,y_b}} / Σ_c e^{z_{b,c}} ),  z_{b,c} = τ⁻¹ cos(f_b, t_c).

    Args:
        image_features: [B, D]. pos_text: [C, D]. labels: [B] in 0 … C−1.
        logit_scale: log τ⁻¹.

    Returns:
        Scalar loss.
    """
    logits = _scale(logit_scale) * _unit(image_features) @ _unit(pos_text).T
    return F.cross_entropy(logits, labels)


def img_loss_msp(
    image_features: Tensor, pos_text: Tensor, neg_text: Tensor, labels: Tensor, logit_scale: float | Tensor
) -> Tensor:
    """Negative–image separation, the authors' "MSP" variant: multi-label soft margin over K logits.

    L_img = mean_b (1/K) Σ_k −[T_{b,k} log σ(z_{b,k}) + (1 − T_{b,k}) log σ(−z_{b,k})],

    with target T_{b,k} = 1 for the 1+M columns of class y_b (its positive and its M negatives) and 0
    for the others. In effect it pushes every other class's negative prompts away from each image.

    Args:
        image_features: [B, D]. pos_text: [C, D]. neg_text: [C, M, D]. labels: [B] in 0 … C−1.
        logit_scale: log τ⁻¹.

    Returns:
        Scalar loss.
    """
    z = extended_logits(image_features, pos_text, neg_text, logit_scale)  # [B, K]
    per_class = neg_text.shape[1] + 1
    target = (torch.arange(z.shape[1], device=z.device) // per_class).unsqueeze(0) == labels.unsqueeze(1)
    return F.binary_cross_entropy_with_logits(z, target.to(z.dtype))


def img_loss_oe(
    image_features: Tensor,
    pos_text: Tensor,
    neg_text: Tensor,
    labels: Tensor | None = None,
    logit_scale: float | Tensor = 0.0,
) -> Tensor:
    """The authors' "OE" variant: cross-entropy to the uniform distribution over all K columns.

    L_img = mean_b −(1/K) Σ_k log softmax(z_b)_k. ``labels`` are ignored. Used with the sign of L_pd
    flipped (see :data:`PD_SIGN`).

    Args:
        image_features: [B, D]. pos_text: [C, D]. neg_text: [C, M, D]. logit_scale: log τ⁻¹.

    Returns:
        Scalar loss.
    """
    z = extended_logits(image_features, pos_text, neg_text, logit_scale)
    return -F.log_softmax(z, dim=1).mean()


def pd_loss(pos_text: Tensor, neg_text: Tensor) -> Tensor:
    """Negative–positive distance.

    L_pd = −(1/C) Σ_c (1/M) Σ_m (1 − cos(t_c, t̃_{c,m})).

    Minimising it pushes each negative prompt away from its own class's positive prompt.

    Args:
        pos_text: [C, D]. neg_text: [C, M, D].

    Returns:
        Scalar loss in [−2, 0].
    """
    cos = (_unit(neg_text) * _unit(pos_text).unsqueeze(1)).sum(-1)  # [C, M]
    return -(1.0 - cos).mean()


def nn_loss(neg_text: Tensor) -> Tensor:
    """Negative diversity.

    L_nn = −(1/C) Σ_c (1 − ‖(1/M) Σ_m t̃_{c,m}‖₂), the t̃ normalised to unit length.

    Minimising it spreads the M negative prompts of a class apart (their mean gets shorter).

    Args:
        neg_text: [C, M, D].

    Returns:
        Scalar loss in [−1, 0].
    """
    mean = _unit(neg_text).mean(dim=1)  # [C, D]
    return -(1.0 - mean.norm(dim=-1)).mean()


ImgLoss = Callable[[Tensor, Tensor, Tensor, Tensor, "float | Tensor"], Tensor]

IMG_LOSSES: dict[str, ImgLoss] = {"msp": img_loss_msp, "oe": img_loss_oe}
"""Registered L_img variants: ``fn(image_features, pos_text, neg_text, labels, logit_scale)``."""

PD_SIGN: dict[str, float] = {"msp": 1.0, "oe": -1.0}
"""Sign applied to L_pd with each L_img variant (the authors flipped it for "OE")."""


def stage2_loss(
    image_features: Tensor,
    pos_text: Tensor,
    neg_text: Tensor,
    labels: Tensor,
    logit_scale: float | Tensor,
    *,
    img_loss: str | ImgLoss = "msp",
    w_img: float = 1.0,
    w_pd: float = 0.1,
    w_nn: float = 0.05,
) -> dict[str, Tensor]:
    """NegPrompt's stage-2 loss.

    L₂ = w_img·L_img + w_pd·σ_pd·L_pd + w_nn·L_nn, with σ_pd = :data:`PD_SIGN` of the L_img variant
    (+1 for "msp", −1 for "oe", +1 for a custom callable).

    Args:
        image_features: [B, D]. pos_text: [C, D] (frozen positives). neg_text: [C, M, D].
        labels: [B] in 0 … C−1. logit_scale: log τ⁻¹.
        img_loss: a name in :data:`IMG_LOSSES` or a callable with the same signature.
        w_img, w_pd, w_nn: the weights (authors' defaults 1, 0.1, 0.05).

    Returns:
        ``{"total", "img", "pd", "nn"}`` scalar tensors; ``pd`` already carries its sign.
    """
    if isinstance(img_loss, str):
        if img_loss not in IMG_LOSSES:
            raise ValueError(f"unknown img_loss {img_loss!r}; choose one of {sorted(IMG_LOSSES)}")
        fn, sign = IMG_LOSSES[img_loss], PD_SIGN[img_loss]
    else:
        fn, sign = img_loss, 1.0
    img = fn(image_features, pos_text, neg_text, labels, logit_scale)
    pd = sign * pd_loss(pos_text, neg_text)
    nn_ = nn_loss(neg_text)
    total = w_img * img + w_pd * pd + w_nn * nn_
    return {"total": total, "img": img, "pd": pd, "nn": nn_}
