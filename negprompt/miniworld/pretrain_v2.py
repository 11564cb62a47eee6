"""Pretraining ``negprompt-mini`` on mini-world v2, and the evaluations that choose and report a recipe.

The pool is v2's pictures of every (concept, artist) drawing but the covariate artist's drawings of
the ID concepts (:func:`~negprompt.miniworld.world_v2.pretraining_pairs`), with v1's clothing,
digits, shapes and textures as a share ``v1_share`` of each batch; with ``clipart`` it also holds the
clip-art drawings of every concept that has some (:mod:`~negprompt.miniworld.clipart`, ID concepts
included: a pretraining source like Noto, in no evaluation set). The loss, schedule and resume are
v1's (:func:`negprompt.miniworld.pretrain.pretrain`).

Evaluation (:func:`evaluate`) on the ``val`` part chooses a recipe; the ``test`` part is evaluated
once, for the card, and never compared between recipes. It reports:

* zero-shot top-1 with the toolkit's prompt ("a photo of a <class>") over the ID classes, over the
  covariate artist's pictures of them, and over every concept of the sets;
* style recognition: for a picture of concept X, which of "an emoji / a drawing / an outline of a X"
  is nearest; top-1 over the three;
* context: the mean cosine between a class's text feature with and without the words before it,
  ``mean_c cos(g("a photo of a c"), g("c"))`` and the same for "an outline of a c" (1 = the words
  around a name change nothing).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open_clip
import open_clip.factory
import open_clip.model
import torch
import torch.nn.functional as F

from . import artists as A
from . import world as W1
from . import world_v2 as W2
from .emoji import Hierarchy
from .lexicon import WordNet
from .pretrain import MEAN, MODEL, STD, PretrainConfig, save_weights, write_json, zero_shot_accuracy
from .wording import ZERO_SHOT_STYLE
from .world import Domain

EMOJI_DOMAIN = "emoji"
OUTLINE_DOMAIN = "emoji outlines"
"""The outline artists' pictures when a recipe gives them a batch share of their own."""


MODEL_V2 = "negprompt-mini2"
"""v2's architecture: ``negprompt-mini`` with a text tower twice as wide (128), which v2's 1,870 names
and many templates need (compared on ``val``: RESULTS.md)."""


@dataclass
class PretrainV2Config(PretrainConfig):
    """v1's recipe fields plus v2's pool (pictures per drawing, the v1 share of a batch, whether
    Debian's clip art joins it, which artist's ID drawings it leaves out); v2's loss and architecture.

    ``covariate_artist``: "" keeps the published split's covariate artist; another artist's name runs
    the recipe, and its evaluation, with that artist held out instead (:func:`with_covariate`).

    ``outline_share``: 0 draws v2's pictures uniformly, so outlines come in proportion to their
    drawings (about a quarter of the pool); a share in (0, 1) makes outline pictures that share of
    v2's pictures in a batch (their own domain, :data:`OUTLINE_DOMAIN`), the pictures unchanged."""

    per_pair: int = 8
    v1_share: float = 0.2
    outline_share: float = 0.0
    clipart: bool = False
    val_per_pair: int = 2
    covariate_artist: str = ""
    loss: str = "own-caption"
    model: str = MODEL_V2


TAG = "miniworld-v2"
SUMMARY_FILE = "pretrain-summary.json"
"""Recipe, architecture changes and training summary of a finished v2 run, beside its weights."""


_CFG_FIELDS = {
    "vision_cfg": frozenset(open_clip.model.CLIPVisionCfg.__dataclass_fields__),
    "text_cfg": frozenset(open_clip.model.CLIPTextCfg.__dataclass_fields__),
}
"""Entries open_clip reads from a tower's config: an architecture variant may set one its base
config leaves at open_clip's default (``vision_cfg.patch_dropout``, say)."""

_DERIVED: set[str] = set()
"""Names :func:`derived_model` registered in this process (the only ones it may register again)."""


def derived_model(base: str, arch: dict, name: str) -> str:
    """Register ``base``'s open_clip config with ``arch``'s changes (``{"<section>.<key>": value}``)
    as ``name``; returns ``name``. An architecture variant compared on ``val`` runs under such a name,
    which must be a plain file-name part and never an existing config's."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"a model name may hold letters, digits, '.', '_' and '-' only, not {name!r}")
    if name in open_clip.list_models() and name not in _DERIVED:
        raise ValueError(
            f"{name!r} is an existing model config; an architecture variant needs a name of its own"
        )
    cfg = copy.deepcopy(open_clip.get_model_config(base))
    if cfg is None:
        raise ValueError(f"unknown model config {base!r}")
    for key, value in arch.items():
        section, _, field = key.partition(".")
        if field not in cfg.get(section, {}) and field not in _CFG_FIELDS.get(section, ()):
            raise ValueError(f"{base} has no config entry {key!r}")
        cfg[section][field] = value
    open_clip.factory._MODEL_CONFIGS[name] = cfg
    _DERIVED.add(name)
    return name


def weights_file(out: Path, cfg: PretrainConfig) -> Path:
    return Path(out) / f"{cfg.model}-{TAG}.safetensors"


def save_run(
    out: Path, model: torch.nn.Module, cfg: PretrainV2Config, summary: dict, arch: dict | None = None
) -> Path:
    """A finished run's fp16 weights and :data:`SUMMARY_FILE` in ``out`` (what :func:`load_run`, and so
    ``scripts/pretrain_mini_clip.py --evaluate-only``, reads on any machine); returns the weights' path.
    ``arch``: ``{"base": name, "changes": {...}}`` when ``cfg.model`` is a :func:`derived_model`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = weights_file(out, cfg)
    save_weights(model, weights, cfg.model)
    write_json(
        out / SUMMARY_FILE, {"recipe": asdict(cfg), "summary": summary} | ({"arch": arch} if arch else {})
    )
    return weights


def load_run(out: Path) -> tuple[PretrainV2Config, dict, dict | None]:
    """The recipe, training summary and architecture changes :func:`save_run` wrote in ``out``; an
    architecture variant is registered again under its recorded name. Raises ValueError naming the
    file when it cannot be read."""
    path = Path(out) / SUMMARY_FILE
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        cfg, summary = PretrainV2Config(**recorded["recipe"]), dict(recorded["summary"])
        arch = recorded.get("arch")
        if arch:
            derived_model(arch["base"], dict(arch["changes"]), cfg.model)
        if cfg.model not in open_clip.list_models():  # also keeps the weights' file name inside ``out``
            raise ValueError(f"unknown model config {cfg.model!r}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}); it is written by a finished run of "
            "scripts/pretrain_mini_clip.py (with --train-only on another machine) or of "
            "scripts/compare_v2_recipes.py --save"
        ) from exc
    return cfg, summary, arch


def with_covariate(split: dict, cfg: PretrainV2Config) -> dict:
    """``split`` with ``cfg.covariate_artist`` as its covariate artist ("" leaves it as it is).

    Raises:
        ValueError: the name is not one of the artists that draw every eligible concept.
    """
    name = cfg.covariate_artist
    if not name or name == split["covariate_artist"]:
        return split
    if name not in A.ARTISTS:
        raise ValueError(
            f"covariate_artist={name!r} is not an artist of the split; choose one of {sorted(A.ARTISTS)}"
        )
    return dict(split, covariate_artist=name)


def domain_weights(v1_share: float, outline_share: float = 0.0) -> dict[str, float]:
    """Batch shares: ``1 - v1_share`` for v2's pictures, ``v1_share`` split like v1's weights; with
    ``outline_share`` > 0, that share of v2's part goes to :data:`OUTLINE_DOMAIN`."""
    if not 0.0 <= v1_share < 1.0:
        raise ValueError(f"v1_share={v1_share} must be in [0, 1)")
    if not 0.0 <= outline_share < 1.0:
        raise ValueError(
            f"outline_share={outline_share} must be in [0, 1) (0: in proportion to the drawings)"
        )
    total = sum(W1.DOMAIN_WEIGHTS.values())
    v2 = {EMOJI_DOMAIN: 1.0 - v1_share}
    if outline_share > 0:
        v2 = {
            EMOJI_DOMAIN: (1.0 - v1_share) * (1.0 - outline_share),
            OUTLINE_DOMAIN: (1.0 - v1_share) * outline_share,
        }
    return v2 | {k: v1_share * v / total for k, v in W1.DOMAIN_WEIGHTS.items()}


def pretraining_world(
    cfg: PretrainV2Config, hierarchy: Hierarchy, split: dict, lexicon: WordNet, progress: bool = True
) -> dict[str, Domain]:
    """v2's pictures (``cfg.per_pair`` per drawing; with ``cfg.clipart``, clip art's too) and, when
    ``cfg.v1_share`` > 0, v1's domains. With ``cfg.outline_share`` > 0 the outline artists' pictures
    are :data:`OUTLINE_DOMAIN`, the others :data:`EMOJI_DOMAIN` (the same pictures as without).
    Shares out of range are refused before any picture is drawn."""
    domain_weights(cfg.v1_share, cfg.outline_share)
    if cfg.clipart:
        A.require("clipart")  # a missing package stops here, before any picture is drawn
        pairs = W2.pretraining_pairs(hierarchy, split, (*A.ARTISTS, "clipart"))
    else:
        pairs = W2.pretraining_pairs(hierarchy, split)
    world = {EMOJI_DOMAIN: W2.pictures(EMOJI_DOMAIN, pairs, cfg.per_pair, "pretrain", hierarchy, lexicon,
                                       progress=progress)}  # fmt: skip
    world = with_outline_domain(world, cfg.outline_share)
    if cfg.v1_share > 0:
        world |= W1.pretraining_world(cfg.seed, cfg.n_shapes, cfg.n_textures)
    return world


def with_outline_domain(world: dict[str, Domain], outline_share: float) -> dict[str, Domain]:
    """``world`` with its outline pictures (those whose facts say ``style=outline``) moved from
    :data:`EMOJI_DOMAIN` into :data:`OUTLINE_DOMAIN` when ``outline_share`` > 0 (unchanged at 0): the
    same pictures, for :func:`domain_weights` to give them a batch share of their own."""
    domain_weights(0.0, outline_share)  # the share's range, checked once
    if outline_share == 0:
        return world
    every = world[EMOJI_DOMAIN]
    is_outline = np.asarray(["style=outline" in facts for facts in every.facts], dtype=bool)
    outline = is_outline[every.group] if len(every) else np.zeros(0, dtype=bool)
    if not outline.any() or outline.all():
        raise ValueError(f"outline_share={outline_share} needs both outline and colour pictures in the pool")
    split = {EMOJI_DOMAIN: _rows(every, np.flatnonzero(~outline)),
             OUTLINE_DOMAIN: _rows(every, np.flatnonzero(outline), OUTLINE_DOMAIN)}  # fmt: skip
    return split | {k: v for k, v in world.items() if k != EMOJI_DOMAIN}


def _images(domain: Domain, rows: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(domain.images[rows])).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - MEAN) / STD


@torch.no_grad()
def style_accuracy(model: torch.nn.Module, sets: list[tuple[Domain, str]], batch_size: int = 512) -> float:
    """Top-1 over the three style prompts of each picture's own concept (pictures of one artist per set)."""
    tokenizer = open_clip.get_tokenizer(MODEL)
    styles = list(ZERO_SHOT_STYLE)
    correct = total = 0
    for domain, artist in sets:
        if not len(domain):
            continue
        prompts = [ZERO_SHOT_STYLE[s].format(n) for n in domain.class_names for s in styles]
        text = F.normalize(model.encode_text(tokenizer(prompts)), dim=-1).view(len(domain.class_names), 3, -1)
        truth = styles.index(A.ARTISTS[artist].style)
        for i in range(0, len(domain), batch_size):
            rows = np.arange(i, min(i + batch_size, len(domain)))
            f = F.normalize(model.encode_image(_images(domain, rows)), dim=-1)  # [b, D]
            t = text[torch.from_numpy(domain.labels[rows])]  # [b, 3, D]
            pred = torch.einsum("bd,bsd->bs", f, t).argmax(1)
            correct += int((pred == truth).sum())
            total += len(rows)
    return correct / max(total, 1)


@torch.no_grad()
def context_cosines(model: torch.nn.Module, names: list[str]) -> dict[str, float]:
    """Mean cos between g(prefix + name) and g(name) over ``names`` for two prefixes (1 = no context)."""
    tokenizer = open_clip.get_tokenizer(MODEL)
    bare = F.normalize(model.encode_text(tokenizer(names)), dim=-1)
    out = {}
    for key, template in (("a photo of a", "a photo of a {}"), ("an outline of a", "an outline of a {}")):
        g = F.normalize(model.encode_text(tokenizer([template.format(n) for n in names])), dim=-1)
        out[key] = round(float((g * bare).sum(-1).mean()), 4)
    return out


def _rows(domain: Domain, rows: np.ndarray, name: str | None = None) -> Domain:
    """The pictures ``rows`` of ``domain`` (its captions, facts and class names kept whole)."""
    return Domain(name or domain.name, domain.images[rows], domain.group[rows], domain.captions, domain.facts,
                  domain.labels[rows], domain.class_names)  # fmt: skip


def _by_artist(domain: Domain, pairs_artists: list[str], per_pair: int) -> list[tuple[Domain, str]]:
    """Split a rendered set into one Domain per artist (pictures come in pair order, per_pair each)."""
    artist_of = np.repeat(np.asarray(pairs_artists), per_pair)
    return [(_rows(domain, np.flatnonzero(artist_of == a)), a) for a in dict.fromkeys(pairs_artists)]


def evaluate_seen(
    model: torch.nn.Module,
    split: dict,
    part: str,
    hierarchy: Hierarchy,
    lexicon: WordNet | None,
    per_pair: int,
) -> dict:
    """The numbers that need only the pretraining artists' drawings (Debian's fonts, no download):
    ID top-1 by artist and overall, style recognition on them, and the context cosines."""
    model = model.eval()
    by = hierarchy.by_name
    seen = [a for a in A.ARTISTS if a != split["covariate_artist"]]
    id_pairs = W2.drawn_pairs([by[n] for n in split["id"]], seen)
    ids = W2.pictures("id", id_pairs, per_pair, part, hierarchy, lexicon)
    by_artist = _by_artist(ids, [a for _, a in id_pairs], per_pair)
    return {
        "part": part,
        "id_top1": round(zero_shot_accuracy(model, ids), 4),
        "id_images": len(ids),
        "id_classes": len(ids.class_names),
        "id_top1_by_artist": {a: round(zero_shot_accuracy(model, d), 4) for d, a in by_artist},
        "style_top1_seen": round(style_accuracy(model, by_artist), 4),
        "context_cosine": context_cosines(model, list(split["id"])),
    }


def evaluate(
    model: torch.nn.Module, split: dict, part: str, hierarchy: Hierarchy, lexicon: WordNet, per_pair: int
) -> dict:
    """Every v2 number of one part (``val`` chooses recipes; ``test`` is for the card only):
    :func:`evaluate_seen`'s, and those that need the covariate artist's drawings."""
    model = model.eval()
    by = hierarchy.by_name
    seen = [a for a in A.ARTISTS if a != split["covariate_artist"]]
    id_pairs = W2.drawn_pairs([by[n] for n in split["id"]], seen)
    cov_pairs = W2.drawn_pairs([by[n] for n in split["id"]], [split["covariate_artist"]])
    all_names = split["id"] + split["near_ood"] + split["far_ood"]
    all_pairs = W2.drawn_pairs([by[n] for n in all_names], A.ARTISTS)
    ids = W2.pictures("id", id_pairs, per_pair, part, hierarchy, lexicon)
    cov = W2.pictures("id covariate", cov_pairs, per_pair, part, hierarchy, lexicon)
    every = W2.pictures("all concepts", all_pairs, max(per_pair // 2, 1), part, hierarchy, lexicon)
    styles = _by_artist(ids, [a for _, a in id_pairs], per_pair) + [(cov, split["covariate_artist"])]
    return evaluate_seen(model, split, part, hierarchy, lexicon, per_pair) | {
        "covariate_top1": round(zero_shot_accuracy(model, cov), 4),
        "all_concepts_top1": round(zero_shot_accuracy(model, every), 4),
        "all_concepts_classes": len(every.class_names),
        "style_top1": round(style_accuracy(model, styles), 4),
    }
