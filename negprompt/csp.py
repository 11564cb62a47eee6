"""CSP (Chen, Gao, Xu, "Conjugated Semantic Pool Improves OOD Detection with Pre-trained
Vision-Language Models", NeurIPS 2024): NegLabel with a larger pool — WordNet nouns plus adjectives
joined to a superclass word ("{adj} object", "{adj} scene", …) — and prompt ensembles.

The steps follow the official code (``MengyuanChen21/NeurIPS2024-CSP``; file:line in
``docs/experiments.md``):

1. Pool (`csp_pool`): every word of every WordNet 3.0 noun and adjective synset, by lexicographer
   file, leaving out :data:`EXCLUDED` (noun.person, noun.quantity, noun.group, adj.pert); words
   sorted within each file, files in name order, duplicates (exact string) dropped across files.
   Each adjective is joined to one of :data:`SUPERCLASS_TEMPLATES` drawn by ``random.Random(seed)``.
2. Text features (`encode_ensemble`): nouns and ID classes are the mean of the unnormalised CLIP
   text features of the 8 :data:`NOUN_TEMPLATES`, adjective phrases the mean over the 4
   :data:`ADJ_TEMPLATES`, then L2-normalised.
3. Mining (`csp_mining`): sim_i = P_η({cos(ẽ_i, e_c)}_c) with η = 0.95, set to 1 where
   max_c cos(ẽ_i, e_c) > 0.95; nouns and adjectives are ranked separately and the lowest
   ⌊ρ·K⌋ of each kept (ρ = 0.15), nouns first.
4. Score: NegLabel's grouped score (`negprompt.neglabel.neglabel_score`, τ = 0.01, G = 100) after
   dropping the last M mod G negatives and a seeded shuffle.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from negprompt.backbone import Backbone
from negprompt.neglabel import group_order, percentile_similarity
from negprompt.wordnet import Synset

__all__ = [
    "ADJ_TEMPLATES",
    "EXCLUDED",
    "NOUN_TEMPLATES",
    "SUPERCLASS_TEMPLATES",
    "csp_mining",
    "csp_negatives",
    "csp_pool",
    "encode_ensemble",
]

EXCLUDED = ("noun.person", "noun.quantity", "noun.group", "adj.pert")
"""Lexicographer files CSP leaves out of the pool."""
NOUN_TEMPLATES = (
    "a close-up photo of the nice {}.",
    "a photo with the nice {}.",
    "a good photo with the nice {}.",
    "a photo of the nice {}.",
    "{}",
    "the {}",
    "the good {}",
    "the nice {}",
)
"""The 8 prompts whose mean encodes an ID class or a noun."""
SUPERCLASS_TEMPLATES = (
    "{} environment", "{} space", "{} object", "{} scene", "{} place", "{} item", "{} area", "{} view",
    "{} thing", "{} pattern", "{} structure", "{} landscape", "{} vista", "{} creature",
)  # fmt: skip
"""The 14 superclass words an adjective is joined to (one per adjective, seeded)."""
ADJ_TEMPLATES = ("{}", "a nice photo of {}", "a good photo of {}", "a close-up photo of {}")
"""The 4 prompts whose mean encodes an adjective phrase."""


def csp_pool(
    nouns: Sequence[Synset], adjectives: Sequence[Synset], *, seed: int = 0, exclude: Sequence[str] = EXCLUDED
) -> tuple[list[str], list[str]]:
    """CSP's candidate nouns and adjective phrases (module docstring, step 1).

    Args:
        nouns, adjectives: WordNet synsets (`negprompt.wordnet.load_synsets`).
        seed: seed of ``random.Random`` that picks each adjective's superclass word.
        exclude: lexicographer files left out.

    Returns:
        ``(nouns, phrases)``: unique nouns, and one phrase per unique adjective ("green object").
    """
    files: dict[str, set[str]] = {}
    for synset in [*nouns, *adjectives]:
        if synset.lexname not in exclude:
            files.setdefault(synset.lexname, set()).update(synset.words)
    rng = random.Random(seed)
    seen: set[str] = set()
    out_nouns: list[str] = []
    phrases: list[str] = []
    for lexname in sorted(files):
        for word in sorted(files[lexname], key=lambda w: w.replace(" ", "_")):
            if word in seen:
                continue
            seen.add(word)
            if lexname.startswith("noun."):
                out_nouns.append(word)
            else:
                phrases.append(rng.choice(SUPERCLASS_TEMPLATES).format(word))
    return out_nouns, phrases


def csp_mining(
    nouns: Tensor,
    adjectives: Tensor,
    id_text: Tensor,
    *,
    fraction: float = 0.15,
    q: float = 0.95,
    cap: float = 0.95,
) -> tuple[Tensor, Tensor]:
    """CSP's selection (module docstring, step 3): indices of the kept nouns and adjective phrases.

    Args:
        nouns: [Kn, D], adjectives: [Ka, D] L2-normalised candidate features.
        id_text: [C, D] L2-normalised ID class features.
        fraction: ρ, the share of each part kept (⌊ρ·K⌋).
        q: the percentile η; cap: candidates whose largest cosine exceeds it get sim = 1.

    Returns:
        ``(noun_idx, adj_idx)``, each ordered from the farthest from the ID classes (ties by index).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the CSP fraction must lie in (0, 1], got {fraction}")
    kept = []
    for feats in (nouns, adjectives):
        sim = percentile_similarity(feats, id_text, q)
        if len(feats):
            sim[_largest_cosine(feats, id_text) > cap] = 1.0
        order = np.argsort(sim.numpy(), kind="stable")[: int(len(feats) * fraction)]
        kept.append(torch.from_numpy(order.copy()).long())
    return kept[0], kept[1]


def csp_negatives(
    nouns: Tensor,
    adjectives: Tensor,
    id_text: Tensor,
    *,
    fraction: float = 0.15,
    groups: int = 100,
    seed: int = 0,
) -> Tensor:
    """CSP's negative labels in group order: indices into ``cat([nouns, adjectives])``.

    `csp_mining` keeps ⌊ρ·Kn⌋ nouns then ⌊ρ·Ka⌋ adjective phrases; the last M mod G are dropped (as
    the official grouping does) and the rest shuffled by `negprompt.neglabel.group_order`, so group
    g is the g-th of G equal contiguous slices.

    Returns:
        [M − M mod G] indices (nouns < Kn ≤ adjective phrases).
    """
    noun_idx, adj_idx = csp_mining(nouns, adjectives, id_text, fraction=fraction)
    kept = torch.cat([noun_idx, adj_idx + len(nouns)])
    if len(kept) < groups:
        raise ValueError(
            f"CSP kept {len(kept)} negative labels, fewer than neglabel_groups = {groups}; lower neglabel_groups "
            f"or raise csp_fraction ({fraction})"
        )
    kept = kept[: len(kept) - len(kept) % groups]
    return kept[group_order(len(kept), groups, seed)]


def _largest_cosine(cand: Tensor, id_text: Tensor, chunk: int = 4096) -> Tensor:
    """max_c cos(ẽ_i, e_c) per candidate, in chunks. [K, D], [C, D] -> [K]."""
    ref = id_text.float().T
    return torch.cat([(cand[i : i + chunk].float() @ ref).amax(dim=1) for i in range(0, len(cand), chunk)])


def _digest(backbone: Backbone, words: Sequence[str], templates: Sequence[str]) -> str:
    key = {"backbone": backbone.identity(), "templates": list(templates), "words": list(words)}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def encode_ensemble(
    backbone: Backbone,
    words: Sequence[str],
    templates: Sequence[str],
    *,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 1024,
    progress: bool = True,
) -> np.ndarray:
    """Prompt-ensemble text features [K, D] (float16, L2-normalised): for each word the mean of the
    unnormalised CLIP text features of ``template.format(word)`` over ``templates``, normalised.

    Cached per (model, weights, templates, words) under ``cache_dir/labels/<digest>/`` when
    ``cache_dir`` is given (written under a temporary name and renamed when complete).
    """
    from negprompt.io import publish_dir

    if not words:
        raise ValueError("the label bank is empty: give at least one candidate word")
    final = None if cache_dir is None else Path(cache_dir) / "labels" / _digest(backbone, words, templates)
    if final is not None and (final / "features.npy").is_file():
        bank = np.load(final / "features.npy", mmap_mode="r")
        if bank.shape == (len(words), backbone.embed_dim):
            return bank
        raise ValueError(
            f"the cached label bank {final} has shape {bank.shape}, not ({len(words)}, {backbone.embed_dim}) "
            f"for {backbone.name}; delete that folder to encode the bank again"
        )
    from negprompt.textbank import encode_template_bank

    feats = encode_template_bank(backbone, words, templates, batch_size=batch_size, progress=progress).mean(
        dim=1
    )
    bank = torch.nn.functional.normalize(feats, dim=-1).numpy().astype(np.float16)
    if final is None:
        return bank
    tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "features.npy", bank)
    (tmp / "words.json").write_text(json.dumps({"words": list(words), "templates": list(templates)}))
    publish_dir(tmp, final)
    return np.load(final / "features.npy", mmap_mode="r")
