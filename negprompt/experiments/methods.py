"""The three methods an experiment compares, as text features of all ID classes.

* ``zeroshot``: hand-made prompts "a photo of a <class>" (MCM, Ming et al., NeurIPS 2022);
* ``coop``: the stage-1 learned positive context (CoOp, Zhou et al., IJCV 2022), MCM score;
* ``negprompt``: the stage-1 positives plus the stage-2 negative contexts (Li et al., CVPR 2024);
* ``neglabel``: the zero-shot prompts plus negative labels mined from WordNet (Jiang et al., ICLR
  2024, `negprompt.neglabel`);
* ``csp``: NegLabel's score with CSP's pool, prompt ensembles and mining (Chen et al., NeurIPS 2024,
  `negprompt.csp`);
* ``adaneg``: NegLabel's or CSP's labels adapted on the test stream (Zhang & Zhang, NeurIPS 2024,
  `negprompt.adaneg`): it reads every test image in a seeded order, so it is not like-for-like with
  the methods that score one image at a time;
* ``tanl``: the zero-shot prompts and the whole WordNet label bank, negatives chosen per batch by
  how strongly the test stream activates them (Zhang et al., CVPR 2026, `negprompt.tanl`); like
  ``adaneg`` it adapts on the test stream.

``zeroshot`` and ``coop`` also get GL-MCM scores (`add_local_scores`) when the backbone is a ViT.

Learned contexts are shared by all classes, so they are paired with every ID class name, including
classes never seen in training (open vocabulary).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from negprompt.backbone import Backbone
from negprompt.evaluate import EvalSet, Method
from negprompt.promptfile import save_prompts
from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder
from negprompt.train import TrainResult

log = logging.getLogger("negprompt.experiments")


def zeroshot_method(
    backbone: Backbone, class_names: Sequence[str], prompt_config: PromptConfig | None = None
) -> Method:
    """Zero-shot prompts "a photo of a <class>": positive text features ``[C, D]``, no negatives."""
    learner = PromptLearner(TextEncoder(backbone), prompt_config or PromptConfig())
    with torch.no_grad():
        pos = learner.positive_features(learner.class_names(class_names)).float().cpu()
    tokens = {"positive": learner.context_tokens()["positive"], "negative": []}
    return Method("zeroshot", pos, None, context_tokens=tokens)


def learned_method(
    name: str,
    result: TrainResult,
    backbone: Backbone,
    class_names: Sequence[str],
    train_class_names: Sequence[str],
    prompt_dir: str | os.PathLike,
) -> Method:
    """A trained stage as a method, its contexts paired with all ``class_names``.

    Args:
        name: ``coop`` or ``locoop`` (stage 1: positives only) or ``negprompt`` (stage 2: positives
            + negatives).
        result: the finished stage.
        class_names: the C classes to evaluate on (text features ``[C, D]`` and ``[C, M, D]``).
        train_class_names: the classes the contexts were learned on (recorded in the prompts file).
        prompt_dir: where ``<name>.safetensors`` / ``<name>.json`` are written.
    """
    if name not in ("coop", "locoop", "negprompt"):
        raise ValueError(f"a learned method is 'coop', 'locoop' or 'negprompt', not {name!r}")
    learner = result.learner
    extra = {k: v for k, v in result.summary().items() if k not in ("history", "checkpoint")}
    files = save_prompts(Path(prompt_dir) / name, learner, backbone, list(train_class_names), extra=extra)
    with torch.no_grad():
        classes = learner.class_names(class_names)
        pos = learner.positive_features(classes).float().cpu()
        neg = learner.negative_features(classes).float().cpu() if name == "negprompt" else None
    tokens = learner.context_tokens()
    if name != "negprompt":
        tokens["negative"] = []
    return Method(name, pos, neg, context_tokens=tokens, prompt_file=files)


def neglabel_method(
    backbone: Backbone,
    class_names: Sequence[str],
    zeroshot: Method,
    *,
    n_neg: int = 10_000,
    groups: int = 100,
    seed: int = 0,
    cache_dir: str | os.PathLike,
    wordnet_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Method:
    """NegLabel: the zero-shot positives plus M = ``n_neg`` mined WordNet labels in G = ``groups``.

    The whole WordNet bank is encoded once per model (cached); words equal to an ID class name are
    left out, NegMining keeps the M farthest, and a seeded shuffle forms the groups (both capped by
    the number of candidates). See `negprompt.neglabel`.
    """
    from negprompt.neglabel import encode_label_bank, group_order, neg_mining
    from negprompt.wordnet import wordnet_source, wordnet_words

    words = wordnet_words(wordnet_dir)
    log.info("NegLabel: WordNet 3.0 from %s", wordnet_source(wordnet_dir))
    bank = encode_label_bank(backbone, words, cache_dir=cache_dir, progress=progress)
    own = {c.lower() for c in class_names}
    cand = torch.tensor([i for i, w in enumerate(words) if w.lower() not in own], dtype=torch.long)
    feats = torch.nn.functional.normalize(torch.from_numpy(np.asarray(bank, dtype=np.float32)), dim=-1)
    m = min(n_neg, len(cand))
    kept = cand[neg_mining(feats[cand], zeroshot.pos, m)]
    g = min(groups, m)
    order = kept[group_order(m, g, seed)]
    log.info("NegLabel: %d negative labels in %d groups, from %d WordNet candidates", m, g, len(cand))
    return Method(
        "neglabel", zeroshot.pos, None, context_tokens=zeroshot.context_tokens,
        neg_labels=feats[order], neg_label_words=[words[i] for i in order.tolist()], neg_groups=g,
    )  # fmt: skip


def csp_method(
    backbone: Backbone,
    class_names: Sequence[str],
    *,
    fraction: float = 0.15,
    groups: int = 100,
    seed: int = 0,
    cache_dir: str | os.PathLike,
    wordnet_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Method:
    """CSP: ID classes and nouns as 8-prompt ensembles, adjective phrases as 4-prompt ensembles; the
    kept negatives in G = ``groups`` groups (see `negprompt.csp`). Scored like NegLabel."""
    from negprompt.csp import ADJ_TEMPLATES, NOUN_TEMPLATES, csp_negatives, csp_pool, encode_ensemble
    from negprompt.wordnet import load_synsets, wordnet_source

    nouns, phrases = csp_pool(load_synsets("noun", wordnet_dir), load_synsets("adj", wordnet_dir), seed=seed)
    log.info("CSP: %d nouns and %d adjective phrases from WordNet 3.0 (%s)", len(nouns), len(phrases),
             wordnet_source(wordnet_dir))  # fmt: skip

    def bank(words, templates):
        feats = encode_ensemble(backbone, words, templates, cache_dir=cache_dir, progress=progress)
        return torch.nn.functional.normalize(torch.from_numpy(np.asarray(feats, dtype=np.float32)), dim=-1)

    pos = bank(list(class_names), NOUN_TEMPLATES)
    noun_feats, adj_feats = bank(nouns, NOUN_TEMPLATES), bank(phrases, ADJ_TEMPLATES)
    order = csp_negatives(noun_feats, adj_feats, pos, fraction=fraction, groups=groups, seed=seed)
    words = nouns + phrases
    log.info("CSP: %d negative labels in %d groups", len(order), groups)
    return Method(
        "csp", pos, None, neg_labels=torch.cat([noun_feats, adj_feats])[order],
        neg_label_words=[words[i] for i in order.tolist()], neg_groups=groups,
    )  # fmt: skip


def _in_stream_order(score: str, feats: torch.Tensor, stream_seed: int | None, run) -> tuple:
    """Run ``run`` (stream features ``[N, D]`` -> scores ``[N]``, predictions ``[N]``) on ``feats`` in
    the seeded stream order (`negprompt.adaneg.stream_order`); return what a `Method.adapt` returns,
    in table order: predictions, ``{score: scores}`` and each image's place in the stream."""
    from negprompt.adaneg import stream_order

    order = stream_order(len(feats), stream_seed)
    index = torch.from_numpy(order)
    scores, preds = run(feats[index])
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    out_scores, out_preds = torch.empty_like(scores), torch.empty_like(preds)
    out_scores[index], out_preds[index] = scores, preds
    return out_preds, {score: out_scores}, {"stream_position": position}


def adaneg_method(
    base: Method,
    config,
    *,
    stream: str = "per_set",
    stream_seed: int = 0,
    seed: int = 0,
    progress: bool = True,
    prompts: Method | None = None,
) -> Method:
    """AdaNeg on the labels of ``base`` (``neglabel`` or ``csp``), scored on test streams.

    Args:
        base: the method whose positives and negative labels AdaNeg adapts.
        prompts: a trained method whose positive prompts replace ``base``'s ID text features (``coop``:
            the stage-1 prompts, which NegPrompt keeps as its positives); the method is then named
            ``adaneg_<prompts>``. The official code runs AdaNeg on LAPT's learned prompts likewise
            (``scripts/ood/adaneg/plus_LAPT.sh``); see ``docs/experiments.md``.
        config: an `negprompt.adaneg.AdaNegConfig`.
        stream: ``per_set`` (one stream and a fresh memory per OOD set, with the ID images; the official
            evaluator's protocol) or ``joint`` (all test images in one stream); see `negprompt.streams`.
        stream_seed: seed of the shuffle of each stream.
        seed: seed of the shuffle that forms the groups.
    """
    from negprompt.streams import STREAMS

    if stream not in STREAMS:
        raise ValueError(f"adaneg_stream must be one of {STREAMS}, got {stream!r}")
    from negprompt.adaneg import adaneg_scores
    from negprompt.neglabel import group_order

    if base.neg_labels is None:
        raise ValueError(f"AdaNeg adapts negative labels, and method {base.name!r} has none")
    name, pos, tokens = "adaneg", base.pos, base.context_tokens
    if prompts is not None:
        if prompts.pos.shape != base.pos.shape:
            raise ValueError(
                f"the prompts of {prompts.name!r} have shape {tuple(prompts.pos.shape)} but {base.name!r}'s ID text "
                f"features {tuple(base.pos.shape)}: both must cover the same ID classes with the same backbone"
            )
        name, pos, tokens = f"adaneg_{prompts.name}", prompts.pos, prompts.context_tokens
    m = len(base.neg_labels)
    if not 1 <= config.groups <= m:
        raise ValueError(
            f"adaneg_groups must lie in [1, {m}] (the negative labels of {base.name}), got {config.groups}"
        )
    perm = group_order(m - m % config.groups, config.groups, seed)

    def adapt(feats: torch.Tensor, temperature: float):
        cfg = dataclasses.replace(config, logit_scale=config.logit_scale / temperature)
        return _in_stream_order(
            "adaneg", feats, stream_seed,
            lambda stream: adaneg_scores(stream, pos, base.neg_labels, cfg, group_perm=perm, progress=progress),
        )  # fmt: skip

    record = {"pool": base.name, "prompts": base.name if prompts is None else prompts.name, "stream": stream,
              "stream_seed": stream_seed, **config.to_dict()}  # fmt: skip
    return Method(
        name, pos, None, context_tokens=tokens, adapt=adapt, adapt_stream=stream, adapt_record=record,
    )  # fmt: skip


def tanl_method(
    backbone: Backbone,
    class_names: Sequence[str],
    zeroshot: Method,
    config,
    *,
    stream: str = "per_set",
    stream_seed: int = 0,
    seed: int = 0,
    cache_dir: str | os.PathLike,
    wordnet_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Method:
    """TANL with the zero-shot positives over the whole WordNet bank, scored on the test streams.

    Args:
        zeroshot: the method whose positives TANL scores against (``[C, D]``).
        config: a `negprompt.tanl.TANLConfig`.
        stream: ``per_set`` (each OOD set with the ID images, fresh queues each: the official
            evaluator's protocol) or ``joint`` (all test images in one stream); see `negprompt.streams`.
        stream_seed: seed of the shuffle of each stream.
        seed: seed of the noise images and of the starting queues' order.

    The candidates are every WordNet word that is not an ID class name (the bank NegLabel mines
    from, encoded once per model and cached); the noise images are encoded with ``backbone``.
    """
    from negprompt.neglabel import encode_label_bank
    from negprompt.streams import STREAMS

    if stream not in STREAMS:
        raise ValueError(f"tanl_stream must be one of {STREAMS}, got {stream!r}")
    from negprompt.tanl import noise_images, tanl_scores
    from negprompt.wordnet import wordnet_source, wordnet_words

    words = wordnet_words(wordnet_dir)
    bank = encode_label_bank(backbone, words, cache_dir=cache_dir, progress=progress)
    own = {c.lower() for c in class_names}
    cand = [i for i, w in enumerate(words) if w.lower() not in own]
    if not 1 <= config.labels <= len(cand):
        raise ValueError(
            f"tanl_labels must lie in [1, {len(cand)}] (the WordNet candidates of {wordnet_source(wordnet_dir)}), "
            f"got {config.labels}"
        )
    feats = torch.nn.functional.normalize(torch.from_numpy(np.asarray(bank[cand], dtype=np.float32)), dim=-1)
    noise = backbone.encode_images(noise_images(backbone.image_size, seed=seed)).float().cpu()
    log.info("TANL: %d WordNet candidates, %d noise images", len(cand), len(noise))

    def adapt(images: torch.Tensor, temperature: float):
        cfg = dataclasses.replace(config, logit_scale=config.logit_scale / temperature)
        return _in_stream_order(
            "tanl", images, stream_seed,
            lambda stream: tanl_scores(stream, zeroshot.pos, feats, noise, cfg, seed=seed, progress=progress),
        )  # fmt: skip

    record = {
        "pool": "wordnet",
        "candidates": len(cand),
        "stream": stream,
        "stream_seed": stream_seed,
        "seed": seed,
    }
    return Method(
        "tanl", zeroshot.pos, None, context_tokens=zeroshot.context_tokens, adapt=adapt, adapt_stream=stream,
        adapt_record={**record, **config.to_dict()},
    )  # fmt: skip


def add_local_scores(
    methods: Sequence[Method],
    backbone: Backbone,
    sets: Sequence[EvalSet],
    *,
    temperature: float,
    progress: bool,
) -> None:
    """Set each method's GL-MCM and local-MCM scores of every set (one pass over each set's images)."""
    from negprompt.local import local_scores

    texts = {m.name: m.pos for m in methods}
    per_set = {
        s.name: local_scores(
            backbone,
            [s.root / p for p in s.features.paths],
            texts,
            temperature=temperature,
            progress=progress,
        )
        for s in sets
    }
    for m in methods:
        m.local_scores = {name: scores[m.name] for name, scores in per_set.items()}
