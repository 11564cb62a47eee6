"""Where the mini-world's photographs come from: Fashion-MNIST and scikit-learn's digits.

* Fashion-MNIST (MIT licence, Zalando SE): all 60,000 training images from Debian's
  ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``, or the folder in
  ``$NEGPROMPT_FASHION_MNIST``) feed pretraining; its 10,000 test images are held out for evaluation.
  The package's shipped subset (64 training images per class from the training split, 64 test images
  per class from the held-out test split) serves demos and tests without the Debian package.
* scikit-learn's bundled handwritten digits (1,797 images, 8×8): a seeded 30% is held out of
  pretraining and used for evaluation and as the OOD digits of the presets.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
from PIL import Image

DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_ENV = "NEGPROMPT_FASHION_MNIST"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DIGITS_HELD_OUT_FRACTION = 0.3
DIGITS_SPLIT_SEED = 1234


class MiniWorldDataError(ValueError):
    """A source of the mini-world is missing or damaged (the message says how to get it)."""


def fashion_dir() -> Path:
    """The Fashion-MNIST folder: ``$NEGPROMPT_FASHION_MNIST`` or Debian's."""
    return Path(os.environ.get(FASHION_ENV) or DEBIAN_FASHION_DIR)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise
    except (OSError, EOFError) as exc:
        raise MiniWorldDataError(
            f"{path} is damaged ({type(exc).__name__}: {exc}); reinstall it: "
            "apt-get install --reinstall dataset-fashion-mnist"
        ) from exc
    magic = int.from_bytes(data[:4], "big")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if magic != 0x0800 + ndim or len(data) != expected:
        raise MiniWorldDataError(
            f"{path} is not a complete IDX file ({len(data)} bytes, expected {expected}); reinstall it: "
            "apt-get install --reinstall dataset-fashion-mnist"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@functools.lru_cache(maxsize=2)
def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` (``train`` or ``test``): images uint8 ``[N, 28, 28]``, labels ``[N]``.

    Raises:
        MiniWorldDataError: the files are missing (the message names the folder and the package) or
            damaged.
    """
    folder = fashion_dir()
    images_name, labels_name = _FILES[split]
    try:
        images = _read_idx(folder / images_name, 3)
        labels = _read_idx(folder / labels_name, 1)
    except FileNotFoundError as exc:
        raise MiniWorldDataError(
            f"Fashion-MNIST is not in {folder} ({exc.filename} is missing). On Debian or Ubuntu: "
            f"sudo apt-get install dataset-fashion-mnist; elsewhere put the four *-ubyte.gz files of "
            f"https://github.com/zalandoresearch/fashion-mnist in a folder and set {FASHION_ENV} to it."
        ) from exc
    if len(images) != len(labels):
        raise MiniWorldDataError(f"{folder}: {len(images)} images but {len(labels)} labels ({split})")
    return images, labels


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, d.target.astype(np.int64)


def digits(part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits, ``part`` = ``pretrain`` (70%) or ``held-out`` (30%, seeded).

    Returns ``(images uint8 [n, 8, 8] in 0..255, labels [n], source indices [n])``.
    """
    images, labels = _digits()
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(images))
    n_held = int(round(DIGITS_HELD_OUT_FRACTION * len(images)))
    if part == "held-out":
        idx = np.sort(order[:n_held])
    elif part == "pretrain":
        idx = np.sort(order[n_held:])
    else:
        raise ValueError(f"unknown digits part {part!r}; choose 'pretrain' or 'held-out'")
    return images[idx], labels[idx], idx


def to_32(images: np.ndarray) -> np.ndarray:
    """Gray images ``[N, h, w]`` -> RGB uint8 ``[N, 32, 32, 3]`` with PIL's bicubic resize.

    This is what the model's own preprocessing (Resize(32, bicubic)) does to the PNG files the
    experiments read, so pretraining sees the same pixels as feature extraction.
    """
    out = np.empty((len(images), 32, 32), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img)
        out[i] = np.asarray(pil if pil.size == (32, 32) else pil.resize((32, 32), Image.BICUBIC))
    return np.repeat(out[..., None], 3, axis=3)
