"""The embedded demo benchmark: Fashion-MNIST clothing (ID and near-OOD) and handwritten digits (far-OOD).

Works offline from package data only:

* ``resources/fashion_mnist_subset.npz``: 64 train + 64 test images per class of Fashion-MNIST (MIT,
  Copyright (c) 2017 Zalando SE), built by ``scripts/make_demo_data.py``;
* scikit-learn's bundled ``load_digits`` (8x8, 16 gray levels) as the far-OOD set: 300 of the digits
  that ``negprompt-mini`` never saw in pretraining.

ID classes are six clothing classes; the four held-out classes each have a close ID sibling, so they
form a genuinely *near* OOD set: coat ~ pullover, shirt ~ t-shirt, sneaker ~ sandal, ankle boot ~
sandal. Images keep their native size (28x28, 8x8); the CLIP transform resizes them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .folders import image_folder
from .imageset import ImageSet
from .pngtree import ensure_png_tree

FASHION_CLASSES: tuple[str, ...] = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
"""Fashion-MNIST classes in label order 0..9, with CLIP-friendly names."""
ID_CLASSES: tuple[str, ...] = ("t-shirt", "trouser", "pullover", "dress", "sandal", "bag")
"""The six in-distribution classes of the demo, in label order."""
NEAR_OOD_CLASSES: tuple[str, ...] = ("coat", "shirt", "sneaker", "ankle boot")
"""The four held-out clothing classes (near-OOD)."""
FAR_OOD_COUNT = 300
DIGITS_SEED = 0
_LAYOUT_VERSION = "demo-layout/2"  # 2: far-OOD digits from the pretraining hold-out


@dataclass(frozen=True)
class DemoData:
    """The demo benchmark's image sets.

    Attributes:
        root: the materialized folder (``data_root/demo`` or ``data_root/demo-full``).
        id_train: training images of the six ID classes (labels 0..5 in `ID_CLASSES` order).
        id_test: test images of the ID classes.
        near_ood: test images of the four held-out clothing classes, labelled among their own
            names (`NEAR_OOD_CLASSES` order), not among the ID classes.
        far_ood: handwritten digits (unlabelled, labels -1).
    """

    root: Path
    id_train: ImageSet
    id_test: ImageSet
    near_ood: ImageSet
    far_ood: ImageSet

    @property
    def ood(self) -> dict[str, ImageSet]:
        """OOD sets by name: near first, then far."""
        return {self.near_ood.name: self.near_ood, self.far_ood.name: self.far_ood}

    @property
    def class_names(self) -> tuple[str, ...]:
        """ID class names in label order."""
        return self.id_train.class_names


def folder_name(class_name: str) -> str:
    """Folder name of a class: spaces become underscores (``"ankle boot"`` -> ``"ankle_boot"``)."""
    return class_name.replace(" ", "_").replace("/", "_")


def _resource_bytes(filename: str) -> bytes:
    return resources.files("negprompt.data").joinpath("resources", filename).read_bytes()


def load_fashion_subset() -> dict[str, np.ndarray]:
    """The embedded Fashion-MNIST subset: ``{train,test}_images`` uint8 [N, 28, 28], ``{train,test}_labels`` [N]."""
    with np.load(io.BytesIO(_resource_bytes("fashion_mnist_subset.npz")), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@functools.lru_cache(maxsize=1)
def _digits_raw() -> np.ndarray:
    from sklearn.datasets import load_digits

    raw = load_digits().images  # [1797, 8, 8] float, 0..16
    raw.setflags(write=False)
    return raw


def load_digits_images(
    n: int | None = FAR_OOD_COUNT, seed: int = DIGITS_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as uint8 images.

    Returns ``(images [n, 8, 8] uint8 in 0..255, source indices [n])``: a seeded subset of ``n``
    images (sorted by index) of the digits held out of ``negprompt-mini``'s pretraining
    (`negprompt.miniworld.sources.digits`), or all 1,797 when ``n`` is None. Gray levels 0..16 map
    to 0..255.
    """
    raw = _digits_raw()
    if n is None:
        idx = np.arange(len(raw))
    else:
        from negprompt.miniworld.sources import digits

        held_out = digits("held-out")[2]
        idx = np.sort(np.random.default_rng(seed).choice(held_out, n, replace=False))
    images = np.clip(np.rint(raw[idx] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, idx


def _fashion_items(split: str, images: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> Iterator:
    for img, lab, src in zip(images, labels, sources):
        yield f"fashion/{split}/{folder_name(FASHION_CLASSES[int(lab)])}/{split}-{int(src):05d}.png", img


def _all_items(fashion: dict[str, np.ndarray], digits: tuple[np.ndarray, np.ndarray]) -> Iterator:
    for split in ("train", "test"):
        imgs = fashion[f"{split}_images"]
        src = fashion.get(f"{split}_source_index", np.arange(len(imgs)))
        yield from _fashion_items(split, imgs, fashion[f"{split}_labels"], src)
    for img, src in zip(*digits):
        yield f"digits/digit-{int(src):04d}.png", img


def materialize_demo(data_root: str | os.PathLike, *, full: bool = False) -> DemoData:
    """Write the demo images as PNG files under ``data_root/demo`` and list them.

    Layout (image-folder style)::

        data_root/demo/fashion/train/<class>/train-NNNNN.png   all 10 classes
        data_root/demo/fashion/test/<class>/test-NNNNN.png
        data_root/demo/digits/digit-NNNN.png
        data_root/demo/MANIFEST.json                           sha256 of every file

    Idempotent: a complete, unchanged folder is reused as is; otherwise the folder is rewritten
    atomically (temporary folder + rename).

    Args:
        data_root: the data root (created if needed).
        full: use the whole Fashion-MNIST (60,000 + 10,000 images, downloaded by torchvision into
            ``data_root/downloads``; needs internet once) and all 1,797 digits, under
            ``data_root/demo-full``.

    Raises:
        negprompt.data.downloads.DownloadError: ``full=True`` and Fashion-MNIST is neither on disk nor
            downloadable.
    """
    root = Path(os.path.abspath(os.path.expanduser(data_root)))
    if full:
        from .downloads import fashion_mnist_full

        dest = root / "demo-full"
        key = f"{_LAYOUT_VERSION};fashion-mnist-full;digits=all"

        def items() -> Iterator:
            return _all_items(fashion_mnist_full(root), load_digits_images(None))

        prefix = "demo-full"
    else:
        dest = root / "demo"
        npz_sha = hashlib.sha256(_resource_bytes("fashion_mnist_subset.npz")).hexdigest()
        key = f"{_LAYOUT_VERSION};fashion={npz_sha};digits={FAR_OOD_COUNT}@{DIGITS_SEED}"

        def items() -> Iterator:
            return _all_items(load_fashion_subset(), load_digits_images(FAR_OOD_COUNT, DIGITS_SEED))

        prefix = "demo"
    ensure_png_tree(dest, key, items, desc=f"writing {prefix} images")
    return demo_sets(dest, prefix=prefix)


def demo_sets(demo_root: str | os.PathLike, *, prefix: str = "demo") -> DemoData:
    """List an already materialized demo folder as `DemoData` (set names ``"<prefix>/id-train"`` …)."""
    root = Path(demo_root)
    id_map = {folder_name(c): c for c in ID_CLASSES}
    near_map = {folder_name(c): c for c in NEAR_OOD_CLASSES}
    return DemoData(
        root=root,
        id_train=image_folder(root / "fashion" / "train", f"{prefix}/id-train", class_names=id_map),
        id_test=image_folder(root / "fashion" / "test", f"{prefix}/id-test", class_names=id_map),
        near_ood=image_folder(root / "fashion" / "test", f"{prefix}/near-ood", class_names=near_map),
        far_ood=image_folder(root / "digits", f"{prefix}/far-ood", ood=True),
    )
