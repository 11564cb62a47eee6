"""ImageNet-1k in its original (ILSVRC / Kaggle) layout, with class names from package data.

``data_root`` is the folder that contains ``ImageNet1k/`` (and the OOD sets ``iNaturalist/`` …)::

    data_root/ImageNet1k/ILSVRC/Data/CLS-LOC/train/n01440764/n01440764_10026.JPEG
    data_root/ImageNet1k/ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG   (flat, or synset folders)
    data_root/ImageNet1k/LOC_val_solution.csv                                   (labels of a flat val/)
"""

from __future__ import annotations

import csv
import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .folders import scan_images, split_entries
from .imageset import IMAGE_EXTS, ImageSet
from .layout import Node, layout_error

IMAGENET_DIR = "ImageNet1k"
SPLIT_PARTS: tuple[str, ...] = ("ILSVRC", "Data", "CLS-LOC")
VAL_CSV = "LOC_val_solution.csv"
_SYNSET_RE = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class ClassInfo:
    """One ImageNet-1k class: its index (0..999), WordNet synset, clean name and WordNet name."""

    index: int
    synset: str
    name: str
    wordnet_name: str


def resource_text(filename: str) -> str:
    """Text of a file shipped in ``negprompt/data/resources``."""
    return resources.files("negprompt.data").joinpath("resources", filename).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _classes() -> tuple[ClassInfo, ...]:
    rows = resource_text("imagenet_classes.tsv").splitlines()
    header = rows[0].split("\t")
    if header[:4] != ["index", "synset", "clean_name", "wordnet_name"]:
        raise RuntimeError(f"imagenet_classes.tsv has an unexpected header {header}")
    out = []
    for line in rows[1:]:
        if line.strip():
            idx, synset, clean, wn = line.split("\t")[:4]
            out.append(ClassInfo(int(idx), synset, clean, wn))
    if [c.index for c in out] != list(range(1000)):
        raise RuntimeError("imagenet_classes.tsv must list the classes 0..999 in order")
    return tuple(out)


def imagenet_classes() -> list[ClassInfo]:
    """The 1000 ImageNet-1k classes in the standard index order (sorted synsets)."""
    return list(_classes())


@functools.lru_cache(maxsize=1)
def synset_to_index() -> dict[str, int]:
    """Map WordNet synset (``"n01440764"``) -> ImageNet class index."""
    return {c.synset: c.index for c in _classes()}


def imagenet_tree(split_note: str = "") -> tuple[Node, ...]:
    """The expected ImageNet-1k layout under ``data_root`` as tree nodes."""
    train = Node(
        "train",
        (
            Node("n01440764", (Node("n01440764_10026.JPEG", is_dir=False), Node("…", is_dir=False))),
            Node("… (1000 synset folders)", is_dir=False),
        ),
    )
    val = Node(
        "val",
        (
            Node("ILSVRC2012_val_00000001.JPEG", is_dir=False, note="flat: labels from LOC_val_solution.csv"),
            Node("… (50,000 images, or 1000 synset folders like train/)", is_dir=False),
        ),
    )
    return (
        Node(
            IMAGENET_DIR,
            (
                Node(VAL_CSV, is_dir=False, note="ImageId,PredictionString (needed for a flat val/)"),
                Node("ILSVRC", (Node("Data", (Node("CLS-LOC", (train, val), note=split_note),)),)),
            ),
        ),
    )


def _check_classes(classes: Sequence[int] | None) -> list[int]:
    if classes is None:
        return list(range(1000))
    out = [int(c) for c in classes]
    bad = [c for c in out if not 0 <= c < 1000]
    if bad:
        raise ValueError(f"ImageNet class indices must be in 0..999, got {bad[:5]}")
    if len(set(out)) != len(out):
        raise ValueError("classes lists an ImageNet class more than once")
    return out


def imagenet_split(
    data_root: str | os.PathLike,
    split: str = "train",
    classes: Sequence[int] | None = None,
    *,
    name: str | None = None,
) -> ImageSet:
    """List an ImageNet-1k split (``"train"`` or ``"val"``) as an `ImageSet`.

    Args:
        data_root: the folder that contains ``ImageNet1k/``.
        split: ``"train"`` (synset folders) or ``"val"`` (synset folders, or flat with labels from
            ``LOC_val_solution.csv`` in ``ImageNet1k/`` or next to ``val/``).
        classes: ImageNet class indices to keep, in the order that defines the new labels
            0..len(classes)-1; ``None`` keeps all 1000 classes.
        name: set name; defaults to ``"ImageNet-1k/<split>"``.

    Returns:
        An `ImageSet` rooted at the split folder, images in label order (sorted paths within a class),
        class names = the clean ImageNet names of ``classes``.

    Raises:
        FileNotFoundError: a folder, synset folder, label file or image is missing (the message shows
            the expected tree and the absent part).
        ValueError: an unknown split, a class folder without images, or images without labels.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    root = Path(os.path.abspath(os.path.expanduser(data_root)))
    cls = _check_classes(classes)
    info = _classes()
    names = tuple(info[c].name for c in cls)
    name = f"ImageNet-1k/{split}" if name is None else name
    parts = (IMAGENET_DIR, *SPLIT_PARTS, split)
    split_dir = root.joinpath(*parts)
    if not split_dir.is_dir():
        raise layout_error(f"ImageNet-1k {split} split", root, parts, imagenet_tree())
    dirs, files, _ = split_entries(os.fspath(split_dir), IMAGE_EXTS)
    synset_dirs = [d for d in dirs if _SYNSET_RE.match(d)]
    if synset_dirs and files:
        raise ValueError(
            f"'{split_dir}' mixes synset folders with {len(files)} loose images; keep one layout "
            "(all images in synset folders, or a flat val/ with LOC_val_solution.csv)."
        )
    if synset_dirs or split == "train":
        paths, labels = _from_synset_folders(root, split_dir, parts, cls, set(synset_dirs))
    else:
        paths, labels = _from_flat_val(root, split_dir, files, cls)
    return ImageSet(name, split_dir, paths, labels, names)


def _from_synset_folders(
    root: Path, split_dir: Path, parts: tuple[str, ...], cls: list[int], present: set[str]
) -> tuple[list[str], list[int]]:
    info = _classes()
    missing = [info[c].synset for c in cls if info[c].synset not in present]
    if missing:
        raise layout_error(
            f"ImageNet-1k synset folder(s) {missing[:5]}{' …' if len(missing) > 5 else ''} "
            f"({len(missing)} of the {len(cls)} requested classes)",
            root,
            (*parts, missing[0]),
            imagenet_tree(),
            extra=f"'{split_dir}' has {len(present)} synset folders.",
        )
    paths: list[str] = []
    labels: list[int] = []
    for label, c in enumerate(cls):
        syn = info[c].synset
        found, _ = scan_images(split_dir / syn, IMAGE_EXTS, prefix=f"{syn}/")
        if not found:
            raise ValueError(
                f"ImageNet-1k class folder '{split_dir / syn}' ({info[c].name}) holds no images."
            )
        paths.extend(found)
        labels.extend([label] * len(found))
    return paths, labels


def find_val_csv(root: Path) -> Path | None:
    """``LOC_val_solution.csv`` in ``ImageNet1k/``, next to ``val/`` or inside it; None if absent."""
    base = root / IMAGENET_DIR
    split_parent = base.joinpath(*SPLIT_PARTS)
    for cand in (base / VAL_CSV, split_parent / VAL_CSV, split_parent / "val" / VAL_CSV):
        if cand.is_file():
            return cand
    return None


@functools.lru_cache(maxsize=4)
def _read_val_csv(path: str, mtime_ns: int) -> dict[str, str]:
    labels: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"ImageId", "PredictionString"} <= set(reader.fieldnames):
            raise ValueError(
                f"'{path}' must have the columns ImageId,PredictionString; found {reader.fieldnames}"
            )
        for row in reader:
            tokens = (row["PredictionString"] or "").split()
            if not tokens:
                raise ValueError(f"'{path}': image {row['ImageId']!r} has an empty PredictionString")
            labels[row["ImageId"].strip()] = tokens[0]
    return labels


def _from_flat_val(
    root: Path, split_dir: Path, files: list[str], cls: list[int]
) -> tuple[list[str], list[int]]:
    csv_path = find_val_csv(root)
    if csv_path is None:
        raise layout_error(
            f"Labels of the flat ImageNet-1k val/ ({VAL_CSV})",
            root,
            (IMAGENET_DIR, VAL_CSV),
            imagenet_tree(),
            extra=f"'{split_dir}' holds {len(files)} images and no synset folders, so the labels must come "
            f"from {VAL_CSV} (in '{root / IMAGENET_DIR}' or next to val/).",
        )
    gt = _read_val_csv(str(csv_path), csv_path.stat().st_mtime_ns)
    if not files:
        raise ValueError(f"ImageNet-1k val folder '{split_dir}' holds no images and no synset folders.")
    by_stem = {os.path.splitext(f)[0]: f for f in files}
    unlabelled = [f for s, f in by_stem.items() if s not in gt]
    if unlabelled:
        raise ValueError(
            f"{len(unlabelled)} images in '{split_dir}' have no row in '{csv_path}' "
            f"(e.g. {unlabelled[:3]}); the label file does not match the images."
        )
    s2i = synset_to_index()
    unknown = sorted({s for s in gt.values() if s not in s2i})
    if unknown:
        raise ValueError(f"'{csv_path}' names synsets that are not ImageNet-1k classes: {unknown[:5]}")
    new_label = {c: i for i, c in enumerate(cls)}
    wanted = [(new_label[s2i[syn]], stem) for stem, syn in gt.items() if s2i[syn] in new_label]
    absent = [stem for _, stem in wanted if stem not in by_stem]
    if absent:
        raise FileNotFoundError(
            f"{len(absent)} validation images listed in '{csv_path}' for the requested classes are missing "
            f"from '{split_dir}' (e.g. {sorted(absent)[:3]}); the val/ folder is incomplete."
        )
    pairs = sorted((label, by_stem[stem]) for label, stem in wanted)
    return [p for _, p in pairs], [lbl for lbl, _ in pairs]
