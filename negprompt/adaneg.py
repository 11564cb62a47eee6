"""AdaNeg (Zhang & Zhang, "AdaNeg: Adaptive Negative Proxy Guided OOD Detection with
Vision-Language Models", NeurIPS 2024): NegLabel's labels as proxies that adapt to the test stream.

Every label l (C ID classes, then M negative labels) owns a memory of S slots: slot 0 holds its
text feature t_l, slots 1 … S−1 test image features. The stream is read in batches of B images;
for each batch, with cosines s = f·t and logit scale κ = 100 (τ = 1/κ):

1. Vanilla score v(x) = NegLabel's grouped score of s (`negprompt.neglabel.neglabel_score`, G
   groups).
2. Memory update, image by image: if v(x) > θ + g(1 − θ) the image joins the memory of its top ID
   class ĉ = argmax_c s_c, with entropy H = −Σ_c p_c log(p_c + 1e−8), p = softmax(κ s_pos); if
   v(x) < θ − gθ it joins its top negative label with the entropy of softmax(κ s_neg). A full memory
   (S − 1 images) replaces its highest-entropy slot when the new entropy is lower than some slot's.
3. Adapted proxies a_l = normalise(Σ_slots memory_l) (empty slots are zero); adapted score
   v'(x) = the grouped score of f·a.
4. Score S(x) = v'(x) + λ·v(x); prediction argmax_c [softmax(κ s) + λ softmax(κ f·a)]_c.

Defaults are the official ImageNet run (``scripts/ood/adaneg/imagenet.sh`` of ``YBZh/OpenOOD-VLM``:
θ = 0.5, g = 0.5, S = ``memleng`` = 10, λ = 0.1, G = 5, B = 256, mean of the memory rather than
attention over it). The batch's own images are in the memory when the batch is scored, so results
depend on the stream's order and batch size: both are inputs. Higher = more in-distribution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from negprompt.neglabel import neglabel_score
from negprompt.progress import tqdm
from negprompt.streams import check_widths

__all__ = ["AdaNegConfig", "adaneg_scores", "stream_order"]


@dataclass(frozen=True)
class AdaNegConfig:
    """AdaNeg's settings (module docstring): θ ``threshold``, g ``gap``, S ``memory`` (slots per
    label, the text feature included), λ ``weight``, G ``groups``, B ``batch_size``, κ ``logit_scale``."""

    threshold: float = 0.5
    gap: float = 0.5
    memory: int = 10
    weight: float = 0.1
    groups: int = 5
    batch_size: int = 256
    logit_scale: float = 100.0

    def to_dict(self) -> dict:
        return asdict(self)


def stream_order(n: int, seed: int | None = 0) -> np.ndarray:
    """The order in which the n test images are streamed: a seeded shuffle, or as given (``None``)."""
    if seed is None:
        return np.arange(n)
    return np.random.default_rng(seed).permutation(n)


def _check(feats: Tensor, pos: Tensor, neg: Tensor, config: AdaNegConfig) -> None:
    if len(feats) == 0:
        raise ValueError("the test stream is empty: AdaNeg needs ID and OOD images to adapt on")
    dims = {
        "image features": feats.shape[1],
        "ID text features": pos.shape[1],
        "negative labels": neg.shape[1],
    }
    check_widths(dims)
    if config.memory < 2:
        raise ValueError(
            f"adaneg_memory must be >= 2 (the text feature + at least one image), got {config.memory}"
        )
    if len(feats) < config.memory:
        raise ValueError(
            f"the test stream holds {len(feats)} images, fewer than the {config.memory} memory slots per label "
            f"(adaneg_memory); use a smaller adaneg_memory or more test images"
        )
    if not 1 <= config.groups <= neg.shape[0]:
        raise ValueError(
            f"adaneg_groups must lie in [1, {neg.shape[0]}] (the number of negative labels), got {config.groups}"
        )
    if config.batch_size < 1 or not 0.0 <= config.threshold <= 1.0 or not 0.0 <= config.gap <= 1.0:
        raise ValueError(f"AdaNeg needs batch_size >= 1 and threshold, gap in [0, 1]; got {config}")


def _entropy(logits: Tensor) -> float:
    p = torch.softmax(logits, dim=0)
    return float(-(p * torch.log(p + 1e-8)).sum())


def adaneg_scores(
    feats: Tensor,
    pos: Tensor,
    neg: Tensor,
    config: AdaNegConfig = AdaNegConfig(),
    *,
    group_perm: Tensor | None = None,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """AdaNeg's scores and predictions of a test stream, in stream order.

    Args:
        feats: [N, D] L2-normalised image features in the order they arrive (their device is used).
        pos: [C, D] ID text features; neg: [M, D] negative label features.
        config: the settings.
        group_perm: a permutation of ``range(M − M mod G)`` forming the groups (the official code
            drops the last M mod G labels from the score, then shuffles); default: in order.
        progress: a progress bar over batches.

    Returns:
        ``(scores [N] float64, predictions [N] int64)``.
    """
    feats, pos, neg = feats.float(), pos.float(), neg.float()
    _check(feats, pos, neg, config)
    c, m, kappa = pos.shape[0], neg.shape[0], config.logit_scale
    kept = m - m % config.groups
    perm = torch.arange(kept) if group_perm is None else group_perm.long()
    if sorted(perm.tolist()) != list(range(kept)):
        raise ValueError(f"group_perm must be a permutation of range({kept})")
    device = feats.device
    pos, neg, perm = pos.to(device), neg.to(device), perm.to(device)
    text = torch.cat([pos, neg])
    memory = torch.zeros(c + m, config.memory + 1, feats.shape[1], device=device)
    memory[:, 0] = text
    entropy = np.zeros((c + m, config.memory + 1))
    filled = np.ones(c + m, dtype=np.int64)
    proxies = text.clone()
    hi = config.threshold + config.gap * (1 - config.threshold)
    lo = config.threshold - config.gap * config.threshold

    def grouped(s: Tensor) -> Tensor:
        return neglabel_score(s[:, :c], s[:, c:][:, perm], config.groups, 1.0 / kappa)

    def remember(row: int, f: Tensor, h: float) -> bool:
        if filled[row] == config.memory:
            if not (h < entropy[row]).any():
                return False
            slot = int(np.argsort(entropy[row], kind="stable")[-1])
        else:
            slot = int(filled[row])
            filled[row] += 1
        memory[row, slot], entropy[row, slot] = f, h
        return True

    scores, preds = [], []
    for start in tqdm(range(0, len(feats), config.batch_size), desc="AdaNeg stream", disable=not progress):
        f = feats[start : start + config.batch_size]
        s = f @ text.T
        vanilla = grouped(s)
        changed = set()
        for i in torch.nonzero(vanilla > hi).flatten().tolist():
            row = int(s[i, :c].argmax())
            if remember(row, f[i], _entropy(kappa * s[i, :c])):
                changed.add(row)
        for i in torch.nonzero(vanilla < lo).flatten().tolist():
            row = c + int(s[i, c:].argmax())
            if remember(row, f[i], _entropy(kappa * s[i, c:])):
                changed.add(row)
        if changed:
            rows = torch.tensor(sorted(changed), device=device)
            proxies[rows] = torch.nn.functional.normalize(memory[rows].sum(dim=1), dim=-1)
        adapted = f @ proxies.T
        mixed = torch.softmax(kappa * s, dim=1) + config.weight * torch.softmax(kappa * adapted, dim=1)
        preds.append(mixed[:, :c].argmax(dim=1))
        scores.append(grouped(adapted).double() + config.weight * vanilla.double())
    return torch.cat(scores).cpu(), torch.cat(preds).cpu()
