"""OpenOOD v1.5's ImageNet-1k benchmark, read from its image lists (Zhang et al., "OpenOOD v1.5:
Enhanced Benchmark for Out-of-Distribution Detection", 2023).

An image list is a text file with one image per line, ``relative/path label``: the path is relative
to the list's image folder and the label is the ImageNet class index (0-999, standard order) for ID
images and ``-1`` for OOD images. The benchmark: ID = ImageNet-1k (``test_imagenet.txt``; few-shot
training images from ``train_imagenet.txt``), near-OOD = SSB-hard and NINCO, far-OOD = iNaturalist,
Textures and OpenImage-O. Its own tables report "FPR@95" with OOD as the positive class; negprompt's
tables keep ID positive (`negprompt.metrics.compute(..., convention="openood")` gives theirs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .imageset import ImageSet

__all__ = [
    "OPENOOD_FAR",
    "OPENOOD_LAYOUT",
    "OPENOOD_NEAR",
    "check_images",
    "openood_imagenet",
    "read_imglist",
]

OPENOOD_NEAR = {"SSB-hard": "test_ssb_hard.txt", "NINCO": "test_ninco.txt"}
OPENOOD_FAR = {
    "iNaturalist": "test_inaturalist.txt",
    "Textures": "test_textures.txt",
    "OpenImage-O": "test_openimage_o.txt",
}
OPENOOD_LAYOUT = """\
<data_root>/openood/
  benchmark_imglist/imagenet/
    train_imagenet.txt  test_imagenet.txt          ("imagenet_1k/train/n01440764/x.JPEG 0")
    test_ssb_hard.txt  test_ninco.txt              (near-OOD, "ssb_hard/…/x.JPEG -1")
    test_inaturalist.txt  test_openimage_o.txt     (far-OOD)
    test_textures.txt                              (far-OOD, paths under images_classic/)
  images_largescale/   imagenet_1k/ ssb_hard/ ninco/ inaturalist/ openimage_o/
  images_classic/      texture/
(OpenOOD v1.5's download script writes this layout: scripts/download/download.py)"""
"""The expected folder layout, printed when a list or an image is missing."""


def read_imglist(
    list_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    name: str,
    class_names: Sequence[str] = (),
    *,
    check_files: bool = True,
) -> ImageSet:
    """An `ImageSet` from an OpenOOD image list (``relative/path label`` per line).

    Args:
        list_file: the list. image_dir: the folder its paths are relative to.
        name: the set's name. class_names: names of labels 0… (empty for an OOD list, all -1).
        check_files: check that every listed image exists (one ``stat`` per image).

    Raises:
        FileNotFoundError: the list, or listed images, are missing (count, first path, layout).
        ValueError: a malformed line (file and line number).
    """
    list_file, image_dir = Path(list_file), Path(image_dir)
    if not list_file.is_file():
        raise FileNotFoundError(
            f"OpenOOD image list {list_file} not found; expected layout:\n{OPENOOD_LAYOUT}"
        )
    paths, labels = [], []
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(" ", 1)
        try:
            label = int(parts[1])
        except (IndexError, ValueError):
            raise ValueError(
                f"{list_file}:{number}: expected 'relative/path label' (label an integer, -1 for OOD), "
                f"got {line.strip()[:80]!r}"
            ) from None
        paths.append(parts[0].removeprefix("./"))
        labels.append(label)
    if not paths:
        raise ValueError(f"{list_file} lists no images")
    if not class_names:
        labels = [-1] * len(labels)
    images = ImageSet(name, image_dir, paths, labels, class_names)
    if check_files:
        check_images(images)
    return images


def openood_imagenet(
    data_root: str | os.PathLike,
    class_names: Sequence[str],
    classes: Sequence[int] | None = None,
    ood_sets: Sequence[str] | None = None,
) -> tuple[ImageSet, ImageSet, dict[str, ImageSet]]:
    """OpenOOD v1.5's ImageNet-1k benchmark under ``<data_root>/openood`` (see `OPENOOD_LAYOUT`).

    Args:
        data_root: the folder holding ``openood/``.
        class_names: the 1000 ImageNet class names (standard index order).
        classes: class indices to keep as ID (relabelled 0…), None = all.
        ood_sets: OOD sets to read (names of `OPENOOD_NEAR` / `OPENOOD_FAR`), None = all five.

    Returns:
        ``(ID train, ID test, {OOD name: set})``, OOD sets near-OOD first.
    """
    root = Path(data_root).expanduser() / "openood"
    lists = root / "benchmark_imglist" / "imagenet"
    large, classic = root / "images_largescale", root / "images_classic"
    keep = list(range(len(class_names))) if classes is None else list(classes)
    names = [class_names[i] for i in keep]
    new = {c: i for i, c in enumerate(keep)}

    def id_set(file: str, name: str, check: bool) -> ImageSet:
        full = read_imglist(lists / file, large, name, class_names, check_files=False)
        rows = [i for i, y in enumerate(full.labels) if y in new]
        out = ImageSet(name, large, [full.paths[i] for i in rows], [new[full.labels[i]] for i in rows], names)
        if check:
            check_images(out)
        return out

    train = id_set("train_imagenet.txt", "OpenOOD ImageNet-1k/train", check=False)  # few shots are drawn
    test = id_set("test_imagenet.txt", "OpenOOD ImageNet-1k/test", check=True)
    every = {**OPENOOD_NEAR, **OPENOOD_FAR}
    wanted = list(every) if ood_sets is None else list(ood_sets)
    unknown = [n for n in wanted if n not in every]
    if unknown:
        raise ValueError(f"unknown OpenOOD set(s) {unknown}; choose from {', '.join(every)}")
    ood = {n: read_imglist(lists / every[n], classic if n == "Textures" else large, n) for n in wanted}
    return train, test, ood


def check_images(images: ImageSet) -> None:
    """FileNotFoundError (with the layout) when images of ``images`` are missing."""
    missing = [p for p in images.paths if not (images.root / p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(images.paths)} images of {images.name} are missing under "
            f"{images.root} (first: {missing[0]}); expected layout:\n{OPENOOD_LAYOUT}"
        )
