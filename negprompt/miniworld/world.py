"""The mini-world as arrays: a pretraining pool with facts and captions, and held-out evaluation sets.

All images are uint8 ``[N, 32, 32, 3]``. Every image has a set of facts and a list of captions that are
true of it (see :mod:`negprompt.miniworld.concepts`); :func:`positives` turns facts and captions into
the positive-pair mask of the contrastive loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import concepts as C
from .render import draw_shape, draw_texture
from .sources import digits, fashion_mnist, to_32

DOMAINS: tuple[str, ...] = ("clothing", "digits", "shapes", "textures")
DOMAIN_WEIGHTS: dict[str, float] = {"clothing": 0.4, "digits": 0.15, "shapes": 0.3, "textures": 0.15}
"""Share of each domain in a pretraining batch."""
EVAL_SEED = 10_000
"""Seed offset of the generated evaluation images (pretraining uses the run's seed)."""


@dataclass
class Domain:
    """Images of one domain with, per image, the index of its caption group and its facts.

    Attributes:
        name: the domain.
        images: uint8 ``[N, 32, 32, 3]``.
        group: ``[N]`` index into ``captions`` (images of one group share their caption list).
        captions: per group, the captions true of its images.
        facts: per group, the facts of its images.
        labels: ``[N]`` class index for evaluation (into ``class_names``), -1 where none.
        class_names: the evaluation classes of this domain.
    """

    name: str
    images: np.ndarray
    group: np.ndarray
    captions: list[list[C.Caption]]
    facts: list[frozenset[str]]
    labels: np.ndarray
    class_names: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.images)


def _class_domain(name, images, labels, class_names, caption_fn) -> Domain:
    captions = [caption_fn(i) for i in range(len(class_names))]
    facts = [frozenset({f"class={n}"}) for n in class_names]
    return Domain(
        name, images, labels.astype(np.int64), captions, facts, labels.astype(np.int64), class_names
    )


def clothing(split: str) -> Domain:
    """Fashion-MNIST ``train`` (pretraining) or ``test`` (held out) from the Debian files."""
    images, labels = fashion_mnist(split)
    return _class_domain(
        "clothing", to_32(images), labels, C.CLOTHING, lambda i: C.clothing_captions(C.CLOTHING[i])
    )


def clothing_from(images: np.ndarray, labels: np.ndarray) -> Domain:
    """Clothing images given as arrays (e.g. the package's shipped subset)."""
    return _class_domain(
        "clothing", to_32(images), labels, C.CLOTHING, lambda i: C.clothing_captions(C.CLOTHING[i])
    )


def handwritten_digits(part: str) -> Domain:
    """The digits ``pretrain`` or ``held-out`` part."""
    images, labels, _ = digits(part)
    return _class_domain("digits", to_32(images), labels, C.DIGITS, C.digit_captions)


def _shape_combos(part: str) -> list[tuple[str, str]]:
    combos = [(c, s) for c in C.COLOURS for s in C.SHAPES]
    if part == "pretrain":
        return [x for x in combos if x not in C.HELD_OUT_COMBOS]
    if part == "eval":
        return [(c, s) for c in C.COLOURS for s in C.EVAL_SHAPES]
    if part == "unseen":
        return sorted(C.HELD_OUT_COMBOS)
    raise ValueError(f"unknown shapes part {part!r}")


def shapes(n: int, seed: int, part: str = "pretrain") -> Domain:
    """``n`` generated shapes: ``pretrain`` (every combination but the held-out ones), ``eval`` (the
    24 colour×shape classes) or ``unseen`` (the held-out combinations); labels index the part's
    ``"<colour> <shape>"`` classes."""
    rng = np.random.default_rng(seed)
    combos = _shape_combos(part)
    names = tuple(f"{c} {s}" for c, s in combos)
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    keys: dict[tuple, int] = {}
    group = np.empty(n, dtype=np.int64)
    captions, facts = [], []
    for i in range(n):
        k = int(rng.integers(len(combos)))
        colour, shape = combos[k]
        fill, size, bg = rng.choice(C.FILLS), rng.choice(C.SIZES), rng.choice(C.BACKGROUNDS)
        images[i] = draw_shape(colour, shape, fill, size, bg, rng)
        labels[i] = k
        key = (colour, shape, str(fill), str(size), str(bg))
        if key not in keys:
            keys[key] = len(captions)
            captions.append(C.shape_captions(*key))
            facts.append(
                frozenset(
                    {f"colour={colour}", f"shape={shape}", f"fill={fill}", f"size={size}", f"background={bg}"}
                )
            )
        group[i] = keys[key]
    return Domain("shapes", images, group, captions, facts, labels, names)


def textures(n: int, seed: int, part: str = "pretrain") -> Domain:
    """``n`` texture images, classes :data:`concepts.TEXTURES` in turn; ``part`` picks the half of the
    photographs the photographed textures are cropped from (``pretrain`` or ``eval``)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % len(C.TEXTURES)
    images = (
        np.stack([draw_texture(C.TEXTURES[k], rng, part) for k in labels])
        if n
        else np.zeros((0, 32, 32, 3), np.uint8)
    )
    return _class_domain("textures", images, labels, C.TEXTURES, lambda i: C.texture_captions(C.TEXTURES[i]))


def pretraining_world(seed: int, n_shapes: int = 30_000, n_textures: int = 12_000) -> dict[str, Domain]:
    """Every pretraining domain (Fashion-MNIST's training split, 70% of the digits, generated shapes
    without the held-out combinations, textures from the photographs' top halves)."""
    return {
        "clothing": clothing("train"),
        "digits": handwritten_digits("pretrain"),
        "shapes": shapes(n_shapes, seed, "pretrain"),
        "textures": textures(n_textures, seed + 1, "pretrain"),
    }


def evaluation_world(
    n_shapes: int = 2400, n_textures: int = 1000, clothing_test: Domain | None = None
) -> dict[str, Domain]:
    """Held-out evaluation sets: Fashion-MNIST test split, the held-out digits, the 24 colour×shape
    classes, the unseen combinations and the textures (photographs' bottom halves)."""
    return {
        "clothing": clothing_test if clothing_test is not None else clothing("test"),
        "digits": handwritten_digits("held-out"),
        "shapes": shapes(n_shapes, EVAL_SEED, "eval"),
        "unseen shapes": shapes(max(n_shapes // 4, 1), EVAL_SEED + 1, "unseen"),
        "textures": textures(n_textures, EVAL_SEED + 2, "eval"),
    }


def fact_vocabulary(world: dict[str, Domain]) -> dict[str, int]:
    """Index of every fact that occurs in ``world``."""
    names = sorted({f for d in world.values() for fs in d.facts for f in fs})
    return {f: i for i, f in enumerate(names)}


def positives(image_facts: np.ndarray, caption_facts: np.ndarray) -> np.ndarray:
    """``[B, B]`` mask: caption ``j`` is true of image ``i`` (image ``i`` has every fact of caption ``j``).

    Args:
        image_facts: bool ``[B, K]``, the facts of each image.
        caption_facts: bool ``[B, K]``, the facts each caption states.
    """
    # float32 counts are exact below 2**24 and use BLAS (integer matmul does not)
    missing = caption_facts.astype(np.float32) @ (~image_facts).astype(np.float32).T  # [B_caption, B_image]
    return (missing == 0).T
