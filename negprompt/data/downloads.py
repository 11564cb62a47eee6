"""Optional downloadable benchmarks via torchvision: full Fashion-MNIST and CIFAR-10/100.

Downloads go to ``data_root/downloads`` (torchvision's own layout) and happen once; afterwards the
files are found on disk and no network is used. Without internet these functions fail within
seconds with a `DownloadError` that says where to put the files by hand (torchvision itself sets no
timeout, so a socket timeout is set around the download).
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .folders import image_folder
from .imageset import ImageSet
from .pngtree import ensure_png_tree

DOWNLOAD_TIMEOUT_S = 15.0
DOWNLOADS_DIR = "downloads"


class DownloadError(RuntimeError):
    """A dataset is not on disk and could not be downloaded."""


@contextlib.contextmanager
def _download_guard(what: str, folder: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> Iterator[None]:
    """Bound every socket operation by ``timeout`` and turn network failures into `DownloadError`."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        yield
    except (
        urllib.error.URLError,
        TimeoutError,
        ConnectionError,
        socket.gaierror,
        OSError,
        RuntimeError,
    ) as e:
        raise DownloadError(
            f"Could not get {what}: {type(e).__name__}: {e}. It is not in '{folder}' and downloading it "
            "failed (no internet access?). Either run once with internet access, or copy torchvision's "
            f"files for {what} into '{folder}' by hand; the embedded demo (full=False) needs no download."
        ) from e
    finally:
        socket.setdefaulttimeout(previous)


def _torchvision_dataset(cls_name: str, folder: Path, train: bool):
    import torchvision.datasets as tvd

    with _download_guard(cls_name, folder):
        return getattr(tvd, cls_name)(root=os.fspath(folder), train=train, download=True)


def fashion_mnist_full(data_root: str | os.PathLike) -> dict[str, np.ndarray]:
    """The whole Fashion-MNIST: ``{train,test}_images`` uint8 [N, 28, 28] and ``{train,test}_labels`` [N].

    Raises:
        DownloadError: not on disk under ``data_root/downloads`` and not downloadable.
    """
    folder = Path(data_root) / DOWNLOADS_DIR
    out: dict[str, np.ndarray] = {}
    for split, train in (("train", True), ("test", False)):
        ds = _torchvision_dataset("FashionMNIST", folder, train)
        out[f"{split}_images"] = np.asarray(ds.data, dtype=np.uint8)
        out[f"{split}_labels"] = np.asarray(ds.targets, dtype=np.int64)
    return out


@dataclass(frozen=True)
class CifarData:
    """CIFAR as an OOD benchmark: ID train/test from one CIFAR, OOD = the other CIFAR's test set.

    Note that a few CIFAR-100 classes overlap CIFAR-10 ones in meaning (e.g. pickup truck vs truck).
    The OOD set keeps the other CIFAR's class names, so results can be broken down by OOD class.
    """

    id_train: ImageSet
    id_test: ImageSet
    ood: ImageSet


def _cifar_split(root: Path, which: int, split: str) -> ImageSet:
    cls_name = f"CIFAR{which}"
    dest = root / f"cifar{which}" / split
    classes: list[str] = []

    def items() -> Iterator:
        ds = _torchvision_dataset(cls_name, root / DOWNLOADS_DIR, split == "train")
        classes.extend(ds.classes)
        for i, (img, lab) in enumerate(zip(ds.data, ds.targets)):
            yield f"{ds.classes[int(lab)]}/{i:05d}.png", np.asarray(img, dtype=np.uint8)

    ensure_png_tree(dest, f"cifar{which}-{split}/1", items, desc=f"writing CIFAR-{which} {split}")
    found = image_folder(dest, f"CIFAR-{which}/{split}")
    # Folder names are torchvision's class names ("aquarium_fish"); show them with spaces.
    return ImageSet(
        found.name,
        found.root,
        found.paths,
        found.labels,
        tuple(c.replace("_", " ") for c in found.class_names),
    )


def cifar(data_root: str | os.PathLike, which: int = 10) -> CifarData:
    """CIFAR-``which`` as ID (train and test) and the other CIFAR's test set as OOD.

    Images are written once as PNG folders under ``data_root/cifar{10,100}/{train,test}/<class>/``
    (downloads in ``data_root/downloads``). ``which=10``: ID CIFAR-10, OOD CIFAR-100; ``which=100``:
    the reverse.

    Raises:
        ValueError: ``which`` is not 10 or 100.
        DownloadError: the data are not on disk and cannot be downloaded.
    """
    if which not in (10, 100):
        raise ValueError(f"which must be 10 or 100, got {which!r}")
    root = Path(os.path.abspath(os.path.expanduser(data_root)))
    other = 100 if which == 10 else 10
    id_train = _cifar_split(root, which, "train")
    id_test = _cifar_split(root, which, "test")
    ood = replace(_cifar_split(root, other, "test"), name=f"CIFAR-{other}")
    return CifarData(id_train, id_test, ood)
