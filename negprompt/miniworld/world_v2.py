"""Mini-world v2 as arrays: pictures of emoji concepts by several artists, with facts and captions.

Pictures are uint8 ``[N, size, size, 3]`` (the model's input size). Each picture is a pure function of
(concept, artist, part, index) (clutter comes from a fixed pool, :func:`clutter_glyphs`): its generator is seeded with ``[PART_SEEDS[part], concept's
position in the hierarchy, artist's position, index]``, so the ``pretrain``, ``val`` and ``test``
parts never share a picture and any subset can be rebuilt alone. Backgrounds of ``val``/``test``
pictures use the evaluation half of v1's photographed textures.

The pretraining pool holds every (concept, artist) drawing except the covariate artist's drawings of
the ID concepts (:mod:`.splits`); a recipe may add clip art (an opt-in source, never in an evaluation
set: :data:`~.artists.OPT_IN`), whose pairs may hold several drawings, taken in turn by the pair's
pictures. Evaluation sets come from :func:`evaluation_sets`.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from negprompt.progress import tqdm

from . import artists as A
from . import wording
from .augment import BACKGROUND_KINDS, Augment, compose
from .emoji import Concept, Hierarchy, load_hierarchy
from .lexicon import Lexeme, WordNet
from .world import Domain

PART_SEEDS = {"pretrain": 11, "val": 12, "test": 13, "fewshot": 14}
"""Seeds of the parts; ``fewshot`` pictures are the experiments' training images (never pretrained on)."""
CLUTTER_EVERY = 29
PARALLEL_FROM = 2000
"""Sets of at least this many pictures are drawn by several processes (each picture is a pure
function of its seed, so the result is the same to the byte)."""
_JOBS: list = []
"""The pictures a forked worker draws: (glyph, seed, outline, clutter, background kind, augment)."""


def pictures(
    name: str,
    pairs: list[tuple[Concept, str]],
    per_pair: int,
    part: str,
    hierarchy: Hierarchy,
    lexicon: WordNet | None,
    size: int = 32,
    progress: bool = False,
    workers: int | None = None,
) -> Domain:
    """``per_pair`` pictures of each (concept, artist) pair as a :class:`~.world.Domain`.

    Labels index ``class_names`` (the pairs' concepts, in hierarchy order); images of one (concept,
    artist, background) share a caption group. ``workers`` processes draw the pictures (default: one
    per CPU core this process may use, for sets of :data:`PARALLEL_FROM` pictures or more; the
    pictures are the same whatever the number).
    """
    if part not in PART_SEEDS:
        raise ValueError(f"unknown part {part!r}; choose one of {sorted(PART_SEEDS)}")
    position = {c.name: i for i, c in enumerate(hierarchy.concepts)}
    classes = sorted({c.name for c, _ in pairs}, key=position.get)
    label_of = {n: i for i, n in enumerate(classes)}
    aug = Augment(size=size, texture_part="eval" if part in ("val", "test") else "pretrain")
    clutter_pool = {a: clutter_glyphs(hierarchy, a) for a in {b for _, b in pairs}}
    n = len(pairs) * per_pair
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    group = np.empty(n, dtype=np.int64)
    keys: dict[tuple[str, str, str], int] = {}
    captions, facts = [], []
    lexemes: dict[str, object] = {}
    names = frozenset(n.lower() for n in position)
    jobs = []
    i = 0
    for concept, artist in pairs:
        drawn = A.drawings(artist, concept)
        if not drawn:
            raise ValueError(f"artist {artist!r} has no drawing of {concept.name!r}")
        style = A.info(artist).style
        if concept.name not in lexemes:
            lexemes[concept.name] = _lexeme(lexicon, concept.name, names)
        lex = lexemes[concept.name]
        base = wording.concept_captions(concept, style, lex)
        clutter = tuple(g for g in clutter_pool[artist] if all(g is not d for d in drawn) and g is not None)
        for k in range(per_pair):
            seed = (PART_SEEDS[part], position[concept.name], A.seed_id(artist), k)
            kind = _background(np.random.default_rng(seed))
            jobs.append((drawn[k % len(drawn)], seed, style == "outline", clutter, kind, aug))
            labels[i] = label_of[concept.name]
            key = (concept.name, artist, kind)
            if key not in keys:
                keys[key] = len(captions)
                captions.append(base + wording.background_captions(concept, style, kind))
                facts.append(wording.picture_facts(concept, style, kind, lex))
            group[i] = keys[key]
            i += 1
    _draw(jobs, images, f"rendering {name}", progress, workers)
    return Domain(name, images, group, captions, facts, labels, tuple(classes))


def _background(rng: np.random.Generator) -> str:
    """A picture's background kind: the first draw of its generator (the drawing continues from there)."""
    return BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]


def _draw_one(job) -> np.ndarray:
    glyph, seed, outline, clutter, kind, aug = job
    rng = np.random.default_rng(seed)
    _background(rng)
    return compose(glyph, rng, aug, outline=outline, clutter=clutter, kind=kind)


def _draw_range(bounds: tuple[int, int]) -> np.ndarray:
    return np.stack([_draw_one(job) for job in _JOBS[bounds[0] : bounds[1]]])


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _draw(jobs: list, images: np.ndarray, desc: str, progress: bool, workers: int | None) -> None:
    """Draw ``jobs`` into ``images``: in this process, or in forked workers for large sets on Linux
    (fork shares the loaded drawings with them; elsewhere, in this process)."""
    global _JOBS
    n = len(jobs)
    if workers is None:
        workers = _default_workers() if n >= PARALLEL_FROM else 1
    workers = max(1, min(workers, n // 64 or 1))
    if workers == 1 or not sys.platform.startswith("linux"):  # fork is safe with numpy and Pillow there
        for i, job in enumerate(tqdm(jobs, desc=desc, disable=not progress, mininterval=2.0)):
            images[i] = _draw_one(job)
        return
    chunk = max(64, -(-n // (workers * 8)))
    bounds = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    _JOBS = jobs
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            bar = tqdm(total=n, desc=desc, disable=not progress, mininterval=2.0)
            for (lo, hi), part in zip(bounds, pool.map(_draw_range, bounds)):
                images[lo:hi] = part
                bar.update(hi - lo)
            bar.close()
    finally:
        _JOBS = []


def _lexeme(lexicon: WordNet | None, name: str, names: frozenset[str]) -> Lexeme | None:
    """WordNet's words for ``name`` without those that name another concept (a caption naming a
    concept must mean that concept)."""
    lex = lexicon.lookup(name) if lexicon is not None else None
    if lex is None:
        return None
    return Lexeme(lex.lemma, tuple(w for w in lex.synonyms if w not in names),
                  tuple(w for w in lex.hypernyms if w not in names))  # fmt: skip


def clutter_glyphs(hierarchy: Hierarchy, artist: str, every: int = CLUTTER_EVERY) -> tuple:
    """The artist's drawings of every ``every``-th concept of the hierarchy: the clutter pool, the same
    whatever set is rendered (so a picture never depends on which other pictures are made)."""
    return tuple(g for c in hierarchy.concepts[::every] if (g := A.glyph(artist, c)) is not None)


def drawn_pairs(concepts, artist_names) -> list[tuple[Concept, str]]:
    """Every (concept, artist) pair of ``concepts`` × ``artist_names`` the artist has drawn."""
    return [(c, a) for c in concepts for a in artist_names if A.glyph(a, c) is not None]


def pretraining_pairs(
    hierarchy: Hierarchy, split: dict, artist_names: tuple[str, ...] | None = None
) -> list[tuple[Concept, str]]:
    """All drawn pairs (of ``artist_names``, default :data:`~.artists.ARTISTS`; an opt-in source such as
    ``clipart`` may be named too) except the covariate artist's drawings of the ID concepts."""
    ids = set(split["id"])
    cov = split["covariate_artist"]
    names = tuple(A.ARTISTS) if artist_names is None else artist_names
    return [(c, a) for c, a in drawn_pairs(hierarchy.concepts, names) if not (a == cov and c.name in ids)]


def evaluation_sets(
    split: dict,
    part: str,
    per_pair: int = 7,
    size: int = 32,
    hierarchy: Hierarchy | None = None,
    lexicon: WordNet | None = None,
    progress: bool = False,
) -> dict[str, Domain]:
    """Held-out pictures of ``part`` (``val`` or ``test``): ``id`` (pretraining artists), ``id covariate``
    (the covariate artist), ``near ood`` and ``far ood`` (every artist)."""
    h = hierarchy or load_hierarchy()
    by = h.by_name
    seen = [a for a in A.ARTISTS if a != split["covariate_artist"]]
    sets = {
        "id": drawn_pairs([by[n] for n in split["id"]], seen),
        "id covariate": drawn_pairs([by[n] for n in split["id"]], [split["covariate_artist"]]),
        "near ood": drawn_pairs([by[n] for n in split["near_ood"]], A.ARTISTS),
        "far ood": drawn_pairs([by[n] for n in split["far_ood"]], A.ARTISTS),
    }
    return {k: pictures(k, v, per_pair, part, h, lexicon, size, progress) for k, v in sets.items()}
