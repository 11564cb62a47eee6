"""Seeded few-shot sampling with a disjoint validation split, and class subsets for open vocabulary."""

from __future__ import annotations

import hashlib
import math
from typing import Literal

import numpy as np

from .imageset import ImageSet


def _class_keys(imageset: ImageSet) -> list[int]:
    """A stable integer per class, from its name (from its label when the set has no names).

    A name that occurs more than once (ImageNet has two "missile" and two "sunglasses" classes) gets
    its occurrence number appended, so no two classes share a key.
    """
    seen: dict[str, int] = {}
    keys = []
    for c in range(imageset.num_classes):
        text = imageset.class_names[c] if imageset.class_names else f"#{c}"
        k = seen.get(text, 0)
        seen[text] = k + 1
        if k:
            text = f"{text}#{k}"
        keys.append(int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little"))
    return keys


def few_shot_split(
    imageset: ImageSet,
    shots: int | None = 16,
    val_per_class: int = 4,
    seed: int = 0,
    *,
    strict: bool = True,
) -> tuple[ImageSet, ImageSet]:
    """Draw ``shots`` training images and ``val_per_class`` validation images per class.

    For each class, its images are sorted by path (so the file-system listing order does not
    matter) and permuted by a ``numpy.random.Generator`` seeded with ``(seed, class key)``; the first
    ``shots`` images of the permutation are the few-shot set and the next ``val_per_class`` the
    validation set, so the two never overlap, and the few-shot set does not depend on
    ``val_per_class``. The class key is a hash of the class name, so a class gets the same images in
    every protocol that contains it (classes with the same name are told apart). Validation images
    serve model selection (CoOp also keeps ``min(shots, 4)`` per class); they are never test images.

    Args:
        imageset: a labelled set (e.g. ImageNet train); OOD images (label -1) are not allowed.
        shots: training images per class; ``None`` takes every image not drawn for validation.
        val_per_class: validation images per class (0 gives an empty validation set).
        seed: the seed.
        strict: raise when a class has fewer than ``shots + val_per_class`` images; with False, such a
            class gives what it has (few-shot images first).

    Returns:
        ``(train, val)``, both in label order (sorted paths within a class), named
        ``"<name>/<shots>-shot-seed<seed>"`` and ``"<name>/val-seed<seed>"``.
    """
    if shots is not None and shots < 1:
        raise ValueError(f"shots must be >= 1 or None, got {shots}")
    if val_per_class < 0:
        raise ValueError(f"val_per_class must be >= 0, got {val_per_class}")
    labels = imageset.labels_array
    if (labels < 0).any():
        raise ValueError(f"few_shot_split needs labelled images; {imageset.name!r} has OOD images (label -1)")
    order = sorted(range(len(imageset)), key=lambda i: (int(labels[i]), imageset.paths[i]))
    order_np = np.asarray(order, dtype=np.int64)
    sorted_labels = labels[order_np]
    starts = np.searchsorted(sorted_labels, np.arange(imageset.num_classes + 1))
    need = val_per_class + (1 if shots is None else shots)
    keys = _class_keys(imageset)
    too_few = []
    train_idx: list[np.ndarray] = []
    val_idx: list[np.ndarray] = []
    for c in range(imageset.num_classes):
        members = order_np[starts[c] : starts[c + 1]]
        n = len(members)
        if n < need:
            too_few.append((imageset.class_names[c], n))
            if strict:
                continue
        rng = np.random.default_rng([seed, keys[c]])
        perm = members[rng.permutation(n)]
        if shots is None:
            val_idx.append(perm[:val_per_class])
            train_idx.append(perm[val_per_class:])
        else:
            train_idx.append(perm[:shots])
            val_idx.append(perm[shots : shots + val_per_class])
    if too_few and strict:
        listing = ", ".join(f"{name!r} ({n})" for name, n in too_few[:10])
        raise ValueError(
            f"{len(too_few)} classes of {imageset.name!r} have fewer than the {need} "
            f"images needed for shots={shots}, val_per_class={val_per_class}: {listing}"
            f"{' …' if len(too_few) > 10 else ''}. Lower shots/val_per_class or pass strict=False."
        )
    tag = "all" if shots is None else str(shots)

    def build(parts: list[np.ndarray], name: str) -> ImageSet:
        idx = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        idx = np.asarray(
            sorted(idx.tolist(), key=lambda i: (int(labels[i]), imageset.paths[i])), dtype=np.int64
        )
        return imageset.subset(idx, name=name)

    return (
        build(train_idx, f"{imageset.name}/{tag}-shot-seed{seed}"),
        build(val_idx, f"{imageset.name}/val-seed{seed}"),
    )


def class_subset(
    n_classes: int,
    fraction: float = 0.1,
    seed: int | None = None,
    mode: Literal["first", "random"] | None = None,
) -> list[int]:
    """Choose ``round(fraction · n_classes)`` classes (at least 1) for open-vocabulary training.

    ``mode="first"`` takes the first classes in class order (the NegPrompt paper: the first 10% of
    ImageNet-1k); ``mode="random"`` draws them with ``numpy.random.default_rng(seed)``. With
    ``mode=None`` the mode is ``"first"`` when ``seed`` is None and ``"random"`` otherwise.

    Returns:
        Sorted class indices.
    """
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if mode is None:
        mode = "first" if seed is None else "random"
    k = max(1, min(n_classes, math.floor(fraction * n_classes + 0.5)))
    if mode == "first":
        if seed is not None:
            raise ValueError("mode='first' takes no seed; use mode='random' for a seeded random subset")
        return list(range(k))
    if mode == "random":
        if seed is None:
            raise ValueError("mode='random' needs a seed so that the subset is reproducible")
        rng = np.random.default_rng(seed)
        return sorted(int(c) for c in rng.choice(n_classes, size=k, replace=False))
    raise ValueError(f"mode must be 'first' or 'random', got {mode!r}")
