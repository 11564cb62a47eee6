"""`ImageSet`: an immutable, labelled list of image files under one data root.

Every dataset in negprompt (ImageNet splits, OOD folders, the embedded demo, few-shot subsets) is an
`ImageSet`. It holds only paths and integer labels, so a list of 1.3 million ImageNet training images
costs a few hundred MB at most and can be sliced, filtered and fingerprinted without touching pixels.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_EXTS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
"""File extensions (lower case, with the dot) that count as images."""

_STAT_CHUNK = 4096


@dataclass(frozen=True)
class ImageSet:
    """An immutable list of images with integer labels.

    Attributes:
        name: human-readable set name, e.g. ``"ImageNet-1k/val"``, ``"iNaturalist"``, ``"demo/id-test"``.
        root: absolute data root of this set; every image lies under it.
        paths: POSIX paths relative to ``root``, one per image.
        labels: class index into ``class_names`` per image, ``-1`` for unlabelled images.
        class_names: the class names; empty for an unlabelled (purely OOD) set. An OOD test set may
            keep its own classes (the held-out classes of a hard-OOD protocol): whether a set is ID
            or OOD is decided by how it is evaluated, and OOD labels never index the ID classes.

    Lists are converted to tuples and ``root`` is made absolute on construction; the lengths of
    ``paths`` and ``labels`` must agree and every label must be ``-1`` or a valid class index.
    """

    name: str
    root: Path
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(os.path.abspath(os.path.expanduser(self.root))))
        if isinstance(self.paths, str | bytes):
            raise TypeError("ImageSet.paths must be a sequence of relative paths, not a single string")
        object.__setattr__(self, "paths", tuple(self.paths))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "labels", tuple(labels.tolist()))
        labels.setflags(write=False)
        object.__setattr__(self, "_labels_np", labels)
        if len(self.paths) != len(labels):
            raise ValueError(
                f"ImageSet {self.name!r}: {len(self.paths)} paths but {len(labels)} labels; "
                "give exactly one label per image (-1 for OOD images)."
            )
        n_cls = len(self.class_names)
        bad = (labels < -1) | (labels >= n_cls)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"ImageSet {self.name!r}: label {int(labels[i])} of {self.paths[i]!r} is out of range; "
                f"labels must be -1 (OOD) or in 0..{n_cls - 1} ({n_cls} class names given)."
            )
        for p in self.paths:
            if (
                not isinstance(p, str)
                or not p
                or p[0] == "/"
                or "\\" in p
                or (".." in p and ".." in p.split("/"))
            ):
                raise ValueError(
                    f"ImageSet {self.name!r}: path {p!r} must be a POSIX path relative to the root "
                    f"{str(self.root)!r} (no leading '/', no '..', no backslashes)."
                )

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels_array(self) -> np.ndarray:
        """Labels as a read-only int64 array, shape [N]."""
        return self._labels_np

    @property
    def num_classes(self) -> int:
        """Number of class names."""
        return len(self.class_names)

    @property
    def is_ood(self) -> bool:
        """True when no image carries a class label."""
        return bool((self._labels_np == -1).all())

    def abspath(self, i: int) -> Path:
        """Absolute path of image ``i``."""
        return self.root / self.paths[i]

    def abspaths(self) -> list[str]:
        """Absolute paths of all images, as strings (for tables and data loaders)."""
        prefix = str(self.root) + os.sep
        if os.sep == "/":
            return [prefix + p for p in self.paths]
        return [prefix + p.replace("/", os.sep) for p in self.paths]

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name (OOD images under ``""``), in class order."""
        counts = np.bincount(self._labels_np + 1, minlength=self.num_classes + 1)
        out = {name: int(counts[i + 1]) for i, name in enumerate(self.class_names)}
        if counts[0]:
            out[""] = int(counts[0])
        return out

    def fingerprint(self) -> str:
        """Identity of the set for caches: sha256 hex digest.

        Hashes the name, the resolved root, every path, label and class name, and each file's size and
        ``mtime_ns``; any change to any of these gives a new digest. Stats run in a thread pool, which
        matters on network file systems with millions of files.

        Raises:
            FileNotFoundError: an image of the set no longer exists.
        """
        h = hashlib.sha256()

        def put(s: str) -> None:
            b = s.encode("utf-8", "surrogateescape")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)

        put("negprompt.ImageSet/1")
        put(self.name)
        put(str(self.root.resolve()))
        put(str(len(self.class_names)))
        for c in self.class_names:
            put(c)
        h.update(self._labels_np.astype("<i8").tobytes())
        # One record per file, "path\0size\0mtime_ns\0" (a path cannot contain NUL), hashed in blocks.
        stats = self._stat_all()
        for start in range(0, len(self.paths), _STAT_CHUNK):
            block = "".join(
                f"{p}\0{size}\0{mtime}\0"
                for p, (size, mtime) in zip(
                    self.paths[start : start + _STAT_CHUNK], stats[start : start + _STAT_CHUNK]
                )
            )
            h.update(block.encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    def _stat_all(self) -> list[tuple[int, int]]:
        root = str(self.root)

        def stat_chunk(chunk: Sequence[str]) -> list[tuple[int, int]]:
            out = []
            for p in chunk:
                full = os.path.join(root, p)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    if os.path.islink(full):
                        raise FileNotFoundError(
                            f"ImageSet {self.name!r}: image {full!r} is a broken symbolic link (to "
                            f"{os.readlink(full)!r}); fix or remove the link"
                        ) from None
                    raise FileNotFoundError(
                        f"ImageSet {self.name!r}: image {full!r} is missing; the data changed since the "
                        "set was listed. List the set again."
                    ) from None
                out.append((st.st_size, st.st_mtime_ns))
            return out

        chunks = [self.paths[i : i + _STAT_CHUNK] for i in range(0, len(self.paths), _STAT_CHUNK)]
        if len(chunks) <= 1:
            return stat_chunk(self.paths)
        with ThreadPoolExecutor(max_workers=min(16, 4 * (os.cpu_count() or 1))) as pool:
            return [s for part in pool.map(stat_chunk, chunks) for s in part]

    def subset(self, indices: Iterable[int] | np.ndarray, name: str | None = None) -> ImageSet:
        """The images at ``indices`` (in that order), same root and class names.

        Args:
            indices: integer positions, or a boolean mask of length N.
            name: name of the new set; defaults to this set's name.
        """
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean mask has shape {idx.shape}, expected ({len(self)},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"subset index out of range for ImageSet {self.name!r} of {len(self)} images")
        paths = self.paths
        return ImageSet(
            name=self.name if name is None else name,
            root=self.root,
            paths=tuple(paths[i] for i in idx.tolist()),
            labels=self._labels_np[idx],
            class_names=self.class_names,
        )

    def with_labels_remapped(
        self,
        mapping: Mapping[int, int] | Sequence[int],
        class_names: Sequence[str],
        *,
        name: str | None = None,
        drop_unmapped: bool = False,
    ) -> ImageSet:
        """Relabel the images: old label ``l`` becomes ``mapping[l]`` among new ``class_names``.

        ``mapping`` is a dict old -> new, or a sequence of old labels whose position is the new label
        (``[7, 3]``: class 7 becomes 0, class 3 becomes 1). OOD images (-1) stay -1.

        Args:
            drop_unmapped: drop images whose label is not in ``mapping``; when False such images
                raise ``ValueError``.
        """
        if not isinstance(mapping, Mapping):
            seq = [int(c) for c in mapping]
            if len(set(seq)) != len(seq):
                raise ValueError(f"mapping lists a class twice: {seq}")
            mapping = {old: new for new, old in enumerate(seq)}
        lut = np.full(self.num_classes + 1, -2, dtype=np.int64)  # slot 0 = label -1
        lut[0] = -1
        for old, new in mapping.items():
            if not 0 <= old < self.num_classes:
                raise ValueError(
                    f"mapping key {old} is not a class of {self.name!r} (0..{self.num_classes - 1})"
                )
            lut[old + 1] = new
        new_labels = lut[self._labels_np + 1]
        keep = new_labels != -2
        if not keep.all() and not drop_unmapped:
            missing = sorted({self.class_names[i] for i in self._labels_np[~keep].tolist()})
            raise ValueError(
                f"{int((~keep).sum())} images of {self.name!r} have labels not in the mapping "
                f"(classes {missing[:5]}{'…' if len(missing) > 5 else ''}); pass drop_unmapped=True to drop them."
            )
        idx = np.flatnonzero(keep)
        return ImageSet(
            name=self.name if name is None else name,
            root=self.root,
            paths=tuple(self.paths[i] for i in idx.tolist()),
            labels=new_labels[idx],
            class_names=tuple(class_names),
        )

    def as_ood(self, name: str | None = None) -> ImageSet:
        """The same images with every label set to -1 and no class names (an unlabelled OOD set)."""
        return ImageSet(
            name=self.name if name is None else name,
            root=self.root,
            paths=self.paths,
            labels=np.full(len(self), -1, dtype=np.int64),
            class_names=(),
        )

    def __repr__(self) -> str:
        n_ood = int((self._labels_np == -1).sum())
        return (
            f"ImageSet(name={self.name!r}, root={str(self.root)!r}, images={len(self)}, "
            f"classes={self.num_classes}, ood_images={n_ood})"
        )
