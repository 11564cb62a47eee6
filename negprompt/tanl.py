"""TANL (Zhang et al., "Activation Matters: Test-time Activated Negative Labels for OOD Detection
with Vision-Language Models", CVPR 2026): negative labels chosen per batch by how strongly the test
stream activates them.

Inputs: image features f ``[N, D]`` in stream order, ID text features t ``[C, D]``, a bank of K
candidate labels u ``[K, D]`` (the whole WordNet bank less the ID class names), and Q noise-image
features z ``[Q, D]`` (`noise_images`). With κ = 100 (τ = 1/κ), every image has an activation over
the candidates, a(x) = softmax(κ f·[t; u])[C:] ``[K]`` (a softmax over ID classes and all K
candidates, keeping the candidates' part). Two queues of at most L = ``memory`` activation rows
``[≤L, K]`` start from the ID text features (a seeded choice of L of the C rows a(t_c)) and from the
noise images (a(z_q)); a score queue of at most 20,000 scores starts from the scores of t and z.

For each batch of B images:

1. Activation metric m = mean(noise queue) − mean(ID queue) ``[K]``; the β = ``labels`` candidates
   with the largest m, in that order, are the batch's negatives n_1 … n_β; the batch's scores with
   them, s₀(x), join the score queue (its oldest scores leave past 20,000).
2. Threshold θ = the grid value in {0, 0.01, …, 0.99} that minimises the within-class variance of
   the score queue split at θ (Otsu's criterion; the middle of a tie); an image is confident ID when
   s₀(x) > θ + g(1 − θ) and confident OOD when s₀(x) < θ − gθ (g = ``gap``).
3. Batch-adaptive metric m' = [α·mean(noise queue) + (1 − α)·mean_{confident OOD} a(x)]
   − [α·mean(ID queue) + (1 − α)·mean_{confident ID} a(x)] (a term without images in the batch
   falls back to its queue's mean); its top β candidates give the score S(x) below.
4. The confident images' activations join their queues (the oldest rows leave past L).

Score (activation-aware, step γ = ``gamma``): with logits o = κ f·[t; n_1 … n_β] ``[C + β]``,
S(x) = mean over k = 1 … ⌈β/γ⌉ of Σ_{c≤C} softmax(o[: C + min(kγ, β)])_c, i.e. the ID share of the
softmax with the negatives added γ at a time in order of activation, so the most activated labels
count most; γ = 0 is the plain share Σ_c softmax(o)_c. Computed as the mean of
sigmoid(logsumexp(o_ID) − logcumsumexp(o_neg)[kγ]). Prediction argmax_c f·t_c. Higher = more ID.

Defaults are the official ImageNet run (``scripts/ood/TANL/official.sh`` of ``YBZh/OpenOOD-VLM``,
postprocessor ``actneg`` = ``openood/postprocessors/activated_neg_postprocessor.py``): β = 1000,
L = 300, g = 0.5, α = 0 (batch-adaptive), B = 256; the script sweeps γ ∈ {2, 1, 0} and sets γ = 1
before the sweep, which is the default here. Where the code differs from the paper, this follows
the code: the threshold ``thres`` = 0.5 is overwritten by the variance search before every use
(lines 560-561), and k-means (``cluster_num``), grouping (``group_num``, ``random_permute``) and
``tau`` are not on the path the script takes. The batch's own images are scored with labels chosen
from their own activations, so results depend on the stream's order and batch size: both are inputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from negprompt.progress import tqdm
from negprompt.streams import check_widths

__all__ = [
    "TANLConfig",
    "activation_aware_score",
    "noise_images",
    "tanl_scores",
    "variance_threshold",
]


@dataclass(frozen=True)
class TANLConfig:
    """TANL's settings (module docstring): β ``labels``, L ``memory`` (rows per activation queue),
    γ ``gamma``, α ``alpha``, g ``gap``, B ``batch_size``, the score queue's length ``score_memory``
    and κ ``logit_scale``."""

    labels: int = 1000
    memory: int = 300
    gamma: int = 1
    alpha: float = 0.0
    gap: float = 0.5
    batch_size: int = 256
    score_memory: int = 20_000
    logit_scale: float = 100.0

    def to_dict(self) -> dict:
        return asdict(self)


def activation_aware_score(logits: Tensor, n_id: int, step: int) -> Tensor:
    """Mean ID share of the softmaxes over the ID logits and growing prefixes of the negatives.

    Args:
        logits: ``[B, C + β]``, the C ID logits then the β negatives in order of activation.
        n_id: C.
        step: γ, negatives added per prefix; 0 scores the full softmax once.

    Returns:
        ``[B]``: mean_k sigmoid(logsumexp(o[:, :C]) − logcumsumexp(o[:, C:])[:, min(kγ, β) − 1]).
    """
    beta = logits.shape[1] - n_id
    if beta < 1 or step < 0:
        raise ValueError(f"need at least one negative logit and step >= 0, got β = {beta}, step = {step}")
    ends = (
        torch.tensor([beta - 1]) if step == 0 else (torch.arange(step, beta + step, step).clamp(max=beta) - 1)
    )
    own = torch.logsumexp(logits[:, :n_id], dim=1, keepdim=True)
    neg = torch.logcumsumexp(logits[:, n_id:], dim=1)[:, ends.to(logits.device)]
    return torch.sigmoid(own - neg).mean(dim=1)


def variance_threshold(scores: Tensor) -> float:
    """Otsu's threshold of ``scores [n]`` on the grid 0, 0.01, …, 0.99 (float32, as in the official
    ``find_best_threshold``, lines 15-80): the split x ≥ θ with the least w₀σ₀² + w₁σ₁², an empty side
    counting as ∞; among equal minima the middle one (index ⌊count/2⌋)."""
    x = scores.detach().float().flatten()
    grid = torch.arange(0, 1, 0.01, dtype=torch.float32, device=x.device)
    upper = x[None, :] >= grid[:, None]  # [100, n]
    x64 = x.double()[None, :]
    crit = torch.zeros(len(grid), dtype=torch.float64, device=x.device)
    for side in (upper, ~upper):
        count = side.sum(dim=1)
        mean = (x64 * side).sum(dim=1) / count.clamp(min=1)
        var = (((x64 - mean[:, None]) ** 2) * side).sum(dim=1) / count.clamp(min=1)
        crit += count / x.numel() * var
    crit[(upper.sum(dim=1) == 0) | (upper.sum(dim=1) == x.numel())] = float("inf")
    best = torch.nonzero(crit == crit.min()).flatten()
    return float(grid[best[len(best) // 2]])


def noise_images(size: int, *, per_kind: int = 3, seed: int = 0) -> Tensor:
    """``[5·per_kind, 3, size, size]`` noise images in [0, 1], fed to the image encoder without mean/std
    normalisation (official ``clip_fixed_ood_prompt.py:735-748``): Gaussian, uniform, Poisson(5),
    Gamma(2, 1) (here the sum of two seeded Exp(1) draws) each min-max scaled, and salt-and-pepper."""
    g = torch.Generator().manual_seed(seed)
    shape = (per_kind, 3, size, size)

    def rescale(x: Tensor) -> Tensor:
        return (x - x.min()) / (x.max() - x.min())

    def exp1() -> Tensor:
        return -torch.log1p(-torch.rand(shape, generator=g))

    gaussian = rescale(torch.randn(shape, generator=g))
    uniform = torch.rand(shape, generator=g)
    poisson = rescale(torch.poisson(torch.full(shape, 5.0), generator=g))
    gamma = rescale(exp1() + exp1())
    salt = (torch.rand(shape, generator=g) >= 0.5).float()
    return torch.cat([gaussian, uniform, poisson, gamma, salt])


def _check(feats: Tensor, pos: Tensor, bank: Tensor, noise: Tensor, config: TANLConfig) -> None:
    if len(feats) == 0:
        raise ValueError("the test stream is empty: TANL needs ID and OOD images to adapt on")
    dims = {
        "image features": feats.shape[1],
        "ID text features": pos.shape[1],
        "label bank": bank.shape[1],
        "noise-image features": noise.shape[1],
    }
    check_widths(dims)
    if len(noise) == 0:
        raise ValueError("TANL needs at least one noise-image feature to start its OOD queue (noise_images)")
    if config.memory < 1:
        raise ValueError(f"tanl_memory must be >= 1 (rows per activation queue), got {config.memory}")
    if len(feats) < config.memory:
        raise ValueError(
            f"the test stream holds {len(feats)} images, fewer than the {config.memory} rows of TANL's "
            f"activation queues (tanl_memory); use a smaller tanl_memory or more test images"
        )
    if not 1 <= config.labels <= bank.shape[0]:
        raise ValueError(
            f"tanl_labels must lie in [1, {bank.shape[0]}] (the candidate labels of the bank), got {config.labels}"
        )
    if config.gamma < 0 or config.batch_size < 1 or config.score_memory < 1:
        raise ValueError(
            f"TANL needs tanl_gamma >= 0, tanl_batch_size >= 1 and score_memory >= 1; got {config}"
        )
    if not 0.0 <= config.alpha <= 1.0 or not 0.0 <= config.gap <= 1.0:
        raise ValueError(f"TANL needs tanl_alpha and gap in [0, 1]; got {config.alpha} and {config.gap}")


def _push(queue: Tensor, rows: Tensor, length: int) -> Tensor:
    """The last ``length`` rows of ``[queue; rows]`` (oldest first)."""
    keep = max(0, len(queue) + len(rows) - length)
    return torch.cat([queue[keep:], rows])[-length:]


def tanl_scores(
    feats: Tensor,
    pos: Tensor,
    bank: Tensor,
    noise: Tensor,
    config: TANLConfig = TANLConfig(),
    *,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """TANL's scores and predictions of a test stream, in stream order.

    Args:
        feats: [N, D] L2-normalised image features in the order they arrive (their device is used).
        pos: [C, D] ID text features; bank: [K, D] candidate labels; noise: [Q, D] noise-image features.
        config: the settings.
        seed: seed of the two permutations that order the starting queues, drawn from one generator:
            the C ID rows first (L of them are kept), then the Q noise rows (official lines 424-447).
        progress: a progress bar over batches.

    Returns:
        ``(scores [N] float64, predictions [N] int64)``.
    """
    feats, pos, bank, noise = feats.float(), pos.float(), bank.float(), noise.float()
    _check(feats, pos, bank, noise, config)
    device, c, kappa = feats.device, pos.shape[0], config.logit_scale
    pos, bank, noise = pos.to(device), bank.to(device), noise.to(device)
    text = torch.cat([pos, bank])  # [C + K, D]
    g = torch.Generator().manual_seed(seed)
    id_rows, noise_rows = torch.randperm(c, generator=g), torch.randperm(len(noise), generator=g)

    def logits_of(x: Tensor) -> Tensor:
        return kappa * x @ text.T  # [n, C + K]

    def activation(logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=1)[:, c:]  # [n, K]

    def score_with(logits: Tensor, metric: Tensor) -> Tensor:
        chosen = torch.topk(metric, config.labels).indices
        columns = torch.cat([torch.arange(c, device=device), c + chosen])
        return activation_aware_score(logits[:, columns], c, config.gamma)

    id_queue = activation(logits_of(pos[id_rows[-config.memory :].to(device)]))
    noise_queue = activation(logits_of(noise[noise_rows.to(device)]))[-config.memory :]
    metric = noise_queue.mean(0) - id_queue.mean(0)
    score_queue = torch.cat(
        [score_with(logits_of(x), metric) for x in (*pos.split(config.batch_size), noise)]
    )
    scores, preds = [], []
    for start in tqdm(range(0, len(feats), config.batch_size), desc="TANL stream", disable=not progress):
        f = feats[start : start + config.batch_size]
        logits = logits_of(f)
        act = activation(logits)
        first = score_with(logits, noise_queue.mean(0) - id_queue.mean(0))
        score_queue = torch.cat([score_queue, first])[-config.score_memory :]
        theta = variance_threshold(score_queue)
        sure_id = first > theta + config.gap * (1 - theta)
        sure_ood = first < theta - config.gap * theta
        id_mean, noise_mean = id_queue.mean(0), noise_queue.mean(0)
        if sure_id.any():
            id_mean = config.alpha * id_mean + (1 - config.alpha) * act[sure_id].mean(0)
        if sure_ood.any():
            noise_mean = config.alpha * noise_mean + (1 - config.alpha) * act[sure_ood].mean(0)
        scores.append(score_with(logits, noise_mean - id_mean).double())
        preds.append(logits[:, :c].argmax(dim=1))
        if sure_id.any():
            id_queue = _push(id_queue, act[sure_id], config.memory)
        if sure_ood.any():
            noise_queue = _push(noise_queue, act[sure_ood], config.memory)
    return torch.cat(scores).cpu(), torch.cat(preds).cpu()
