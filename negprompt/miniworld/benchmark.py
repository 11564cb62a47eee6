"""The mini-world's experiment data as image folders (the same contract as every other benchmark).

``materialize_mini(data_root)`` writes, once, atomically (see :mod:`negprompt.data.pngtree`)::

    data_root/mini/fashion/{train,test}/<class>/*.png   the shipped Fashion-MNIST subset, 10 classes
    data_root/mini/digits/<digit>/*.png                 the digits held out of pretraining
    data_root/mini/shapes/<colour_shape>/*.png          generated evaluation shapes (24 classes)
    data_root/mini/textures/<texture>/*.png             generated evaluation textures (10 classes)

None of the evaluation images was seen in pretraining: the clothing test images come from
Fashion-MNIST's test split, the digits from the held-out part, and the shapes and textures are drawn
with evaluation seeds (textures from the photographs' held-out halves).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from negprompt.data.demo import ID_CLASSES, NEAR_OOD_CLASSES, folder_name, load_fashion_subset
from negprompt.data.folders import image_folder
from negprompt.data.imageset import ImageSet
from negprompt.data.pngtree import ensure_png_tree

from . import concepts as C
from .sources import digits
from .world import EVAL_SEED, shapes, textures

LAYOUT_VERSION = "mini-layout/1"
N_SHAPES = 600
N_TEXTURES = 600
OOD_SETS: tuple[str, ...] = ("digits", "shapes", "textures")
"""The mini-world's OOD sets, as iNaturalist, SUN, Places and Textures are for ImageNet."""


def _items() -> Iterator[tuple[str, object]]:
    fashion = load_fashion_subset()
    for split in ("train", "test"):
        for img, lab, src in zip(
            fashion[f"{split}_images"], fashion[f"{split}_labels"], fashion[f"{split}_source_index"]
        ):
            yield f"fashion/{split}/{folder_name(C.CLOTHING[int(lab)])}/{split}-{int(src):05d}.png", img
    images, labels, idx = digits("held-out")
    for img, lab, src in zip(images, labels, idx):
        yield f"digits/{folder_name(C.DIGITS[int(lab)])}/digit-{int(src):04d}.png", img
    for name, domain in (
        ("shapes", shapes(N_SHAPES, EVAL_SEED + 100, "eval")),
        ("textures", textures(N_TEXTURES, EVAL_SEED + 200, "eval")),
    ):
        for i, (img, lab) in enumerate(zip(domain.images, domain.labels)):
            yield f"{name}/{folder_name(domain.class_names[int(lab)])}/{name}-{i:04d}.png", img


def mini_root(data_root: str | os.PathLike) -> Path:
    """Write the mini-world's image folders under ``data_root/mini`` (once) and return that folder."""
    root = Path(os.path.abspath(os.path.expanduser(data_root))) / "mini"
    from importlib import resources

    subset = resources.files("negprompt.data").joinpath("resources", "fashion_mnist_subset.npz").read_bytes()
    photos = resources.files("negprompt.miniworld").joinpath("resources", "texture_photos.npz").read_bytes()
    key = (
        f"{LAYOUT_VERSION};fashion={hashlib.sha256(subset).hexdigest()[:16]};"
        f"photos={hashlib.sha256(photos).hexdigest()[:16]};shapes={N_SHAPES};textures={N_TEXTURES}"
    )
    ensure_png_tree(root, key, _items, desc="writing mini-world images")
    return root


def mini_sets(
    data_root: str | os.PathLike, *, hard: bool = False
) -> tuple[ImageSet, ImageSet, dict[str, ImageSet], str]:
    """(ID train, ID test, OOD sets, benchmark name) of the mini-world.

    ``hard=False``: ID = the 10 clothing classes, OOD = digits, shapes, textures (conventional and
    open-vocabulary presets). ``hard=True``: ID = six clothing classes, OOD = their four held-out
    siblings (coat, shirt, sneaker, ankle boot), labelled among their own names.
    """
    root = mini_root(data_root)
    ids = ID_CLASSES if hard else C.CLOTHING
    id_map = {folder_name(c): c for c in ids}
    train = image_folder(root / "fashion" / "train", "mini/id-train", class_names=id_map)
    test = image_folder(root / "fashion" / "test", "mini/id-test", class_names=id_map)
    if hard:
        near = {folder_name(c): c for c in NEAR_OOD_CLASSES}
        ood = {
            "mini/held-out clothing": image_folder(
                root / "fashion" / "test", "mini/held-out clothing", class_names=near
            )
        }
        return train, test, ood, "mini-world hard OOD"
    names = {
        "digits": {folder_name(c): c for c in C.DIGITS},
        "shapes": {folder_name(f"{c} {s}"): f"{c} {s}" for c in C.COLOURS for s in C.EVAL_SHAPES},
        "textures": {folder_name(c): c for c in C.TEXTURES},
    }
    ood = {f"mini/{n}": image_folder(root / n, f"mini/{n}", class_names=names[n]) for n in OOD_SETS}
    return train, test, ood, "mini-world"
