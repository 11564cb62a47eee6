"""NegLabel (Jiang et al., "Negative Label Guided OOD Detection with Pretrained Vision-Language
Models", ICLR 2024): zero-shot negative labels mined from WordNet.

1. Candidates: WordNet nouns and adjectives (`negprompt.wordnet`), each encoded with the same
   hand-made prompt as the ID classes ("a photo of a <word>"), once per model (`encode_label_bank`,
   cached atomically).
2. NegMining: the similarity of candidate i to the ID label space is the η-percentile of its
   cosines to the C ID text features, sim_i = P_η({cos(ẽ_i, e_c)}_c) (η = 0.95; the paper writes it
   as the 5th percentile of negative cosines); the M candidates with the *lowest* sim_i — farthest
   from every ID class — are kept (M = 10,000 for ImageNet-1k).
3. Grouping: the M negatives are shuffled (seeded) into G groups (G = 100 in the paper for
   ImageNet); the score is the mean of the per-group scores.
4. Score (`neglabel_score`), with τ = 0.01 (CLIP's logit scale):
   S(x) = (1/G) Σ_g Σ_c e^{s_c/τ} / (Σ_c e^{s_c/τ} + Σ_{j∈g} e^{s̃_j/τ}),
   s_c = cos(f, e_c), s̃_j = cos(f, ẽ_j). Higher = more in-distribution.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from negprompt.backbone import Backbone
from negprompt.progress import tqdm

__all__ = ["TAU", "encode_label_bank", "group_order", "neg_mining", "neglabel_score", "percentile_similarity"]

TAU = 0.01
"""NegLabel's temperature τ on raw cosines (= 1 / CLIP's logit scale of 100)."""


def percentile_similarity(cand: Tensor, id_text: Tensor, q: float = 0.95, chunk: int = 4096) -> Tensor:
    """sim_i = the q-quantile over ID classes c of cos(ẽ_i, e_c). [K, D], [C, D] -> [K] (float32).

    Linear interpolation between order statistics (``torch.quantile``); computed in chunks of
    candidates so that [K, C] never has to fit in memory at once.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"the percentile q must lie in [0, 1], got {q}")
    ref = id_text.float()
    parts = [
        torch.quantile(cand[i : i + chunk].float() @ ref.T, q, dim=1) for i in range(0, len(cand), chunk)
    ]
    return torch.cat(parts) if parts else torch.zeros(0)


def neg_mining(cand: Tensor, id_text: Tensor, n_neg: int, q: float = 0.95) -> Tensor:
    """NegMining: indices of the ``n_neg`` candidates farthest from the ID classes (lowest sim_i).

    Args:
        cand: [K, D] L2-normalised candidate label features.
        id_text: [C, D] L2-normalised ID class features.
        n_neg: M, how many to keep (at most K).
        q: the percentile η of `percentile_similarity`.

    Returns:
        [M] candidate indices, the farthest first (ties by index).
    """
    if not 1 <= n_neg <= len(cand):
        raise ValueError(f"n_neg must lie in [1, {len(cand)}] (the number of candidates), got {n_neg}")
    sim = percentile_similarity(cand, id_text, q)
    return torch.from_numpy(np.argsort(sim.numpy(), kind="stable")[:n_neg].copy())


def group_order(n: int, groups: int, seed: int = 0) -> Tensor:
    """A seeded permutation of ``range(n)``; group g is the g-th of ``groups`` contiguous slices."""
    if not 1 <= groups <= n:
        raise ValueError(f"groups must lie in [1, {n}] (the number of negative labels), got {groups}")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def neglabel_score(s_pos: Tensor, s_neg: Tensor, groups: int = 1, tau: float = TAU) -> Tensor:
    """The NegLabel score (module docstring, step 4), averaged over ``groups`` contiguous groups.

    S(x) = (1/G) Σ_g exp(lse_c(s_c/τ) − lse(s_c/τ ∪ s̃_{j∈g}/τ)), computed in log space.

    Args:
        s_pos: [N, C] cosines to the ID class prompts.
        s_neg: [N, M] cosines to the negative labels, in group order (`group_order`).
        groups: G; group g holds columns ``np.array_split(range(M), G)[g]``.
        tau: τ > 0.

    Returns:
        [N] scores in (0, 1).
    """
    z_pos, z_neg = s_pos / tau, s_neg / tau
    lse_pos = torch.logsumexp(z_pos, dim=1, keepdim=True)
    out = torch.zeros(s_pos.shape[0], dtype=z_pos.dtype, device=z_pos.device)
    for cols in torch.tensor_split(torch.arange(s_neg.shape[1]), groups):
        lse_g = torch.logsumexp(torch.cat([lse_pos, z_neg[:, cols]], dim=1), dim=1)
        out += torch.exp(lse_pos[:, 0] - lse_g)
    return out / groups


def _digest(backbone: Backbone, words: Sequence[str], template: str) -> str:
    key = {"backbone": backbone.identity(), "template": template, "words": list(words)}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def encode_label_bank(
    backbone: Backbone,
    words: Sequence[str],
    *,
    cache_dir: str | os.PathLike,
    batch_size: int = 1024,
    progress: bool = True,
) -> np.ndarray:
    """Text features [K, D] (float16, L2-normalised, memory-mapped) of "a photo of a <word>".

    Encoded with the zero-shot prompt of `negprompt.experiments.methods.zeroshot_method`, so ID and
    negative labels share one template. Cached per (model, weights, words) under
    ``cache_dir/labels/<digest>/``; the folder is written under a temporary name and renamed when
    complete, so a folder with the final name always loads.
    """

    from negprompt.io import publish_dir
    from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder

    if not words:
        raise ValueError("the label bank is empty: give at least one candidate word")
    template = repr(PromptConfig())
    final = Path(cache_dir) / "labels" / _digest(backbone, words, template)
    if (final / "features.npy").is_file():
        bank = np.load(final / "features.npy", mmap_mode="r")
        if bank.shape != (len(words), backbone.embed_dim):
            raise ValueError(
                f"the cached label bank {final} has shape {bank.shape}, not ({len(words)}, "
                f"{backbone.embed_dim}) for {backbone.name}; delete that folder to encode the bank again"
            )
        return bank
    learner = PromptLearner(TextEncoder(backbone), PromptConfig())
    chunks = []
    with torch.no_grad():
        for i in tqdm(range(0, len(words), batch_size), desc="label bank", disable=not progress):
            names = learner.class_names(list(words[i : i + batch_size]), unique=False)  # a word bank
            chunks.append(learner.positive_features(names).float().cpu().numpy().astype(np.float16))
    tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "features.npy", np.concatenate(chunks))
    (tmp / "words.json").write_text(json.dumps(list(words)))
    publish_dir(tmp, final)
    return np.load(final / "features.npy", mmap_mode="r")
