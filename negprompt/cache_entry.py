"""One feature cache entry on disk: its files, written with checksums and verified on every load.

An entry folder holds ``features.npy`` (``[N, D]`` float16), ``labels.npy`` (``[N]`` int64),
``paths.json`` (``N`` paths) and ``meta.json``, written last, which records the key, the count, the
size of every file and the SHA-256 of the small files (`CHECKED_FILES`). `load_cached` checks all
of it cheaply (the features are only memory-mapped, never hashed) and raises `CacheEntryError`
naming the entry; `load_or_quarantine` moves a damaged entry aside so that it is computed again.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from negprompt.io import atomic_write, sha256_file

log = logging.getLogger("negprompt.features")


@dataclass
class CachedFeatures:
    """Image features of one dataset view, read from the cache.

    Attributes:
        features: ``[N, D]`` float16, L2-normalised, memory-mapped.
        labels: ``[N]`` int64 class indices (``-1`` for OOD / unlabelled).
        paths: ``N`` image paths relative to the dataset root.
        meta: the key and facts of the entry.
        path: the cache folder.
    """

    features: np.ndarray
    labels: np.ndarray
    paths: list[str]
    meta: dict
    path: Path

    def __len__(self) -> int:
        return len(self.labels)

    def tensor(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """Features as a float32 tensor ``[N, D]`` on ``device``."""
        return torch.from_numpy(np.asarray(self.features, dtype=np.float32)).to(device)


class CacheEntryError(ValueError):
    """A feature cache entry whose files do not match its ``meta.json`` (truncated, edited, damaged)."""


CHECKED_FILES = ("labels.npy", "paths.json")
"""Small files of an entry whose SHA-256 is recorded in ``meta.json`` and checked on every load."""


def load_cached(path: str | os.PathLike) -> CachedFeatures:
    """Open a complete cache entry memory-mapped, after checking it against its ``meta.json``.

    Checks: every file present with the recorded size, the SHA-256 of the small files, features
    ``[count, D]`` float16, ``count`` labels and paths.

    Raises:
        FileNotFoundError: the entry is not complete (no ``meta.json``).
        CacheEntryError: the entry is damaged; the message names the entry and the file.
    """
    path = Path(path)
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"no complete feature cache at {path}")

    def damaged(why: str) -> CacheEntryError:
        return CacheEntryError(f"feature cache entry {path} is damaged: {why}")

    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        for name, size in (meta.get("sizes") or {}).items():
            actual = (path / name).stat().st_size
            if actual != size:
                raise damaged(f"{name} has {actual} bytes, {size} expected")
        for name, digest in (meta.get("sha256") or {}).items():
            if sha256_file(path / name) != digest:
                raise damaged(f"{name} does not match its checksum")
        paths = json.loads((path / "paths.json").read_text(encoding="utf-8"))
        features = np.load(path / "features.npy", mmap_mode="r", allow_pickle=False)
        labels = np.load(path / "labels.npy", allow_pickle=False)
    except CacheEntryError:
        raise
    except Exception as err:  # missing file, truncated .npy, bad JSON, …
        raise damaged(f"{type(err).__name__}: {err}") from err
    count = int(meta.get("count", len(labels)))
    if features.ndim != 2 or features.shape[0] != count or features.dtype != np.float16:
        raise damaged(
            f"features.npy has shape {features.shape} {features.dtype}, [{count}, D] float16 expected"
        )
    if len(labels) != count or len(paths) != count:
        raise damaged(f"{len(labels)} labels and {len(paths)} paths for {count} features")
    return CachedFeatures(features=features, labels=labels, paths=paths, meta=meta, path=path)


def load_or_quarantine(path: Path) -> CachedFeatures | None:
    """The verified entry at ``path``; None if there is none, or if it was damaged and moved aside."""
    if not (path / "meta.json").is_file():
        return None
    try:
        return load_cached(path)
    except CacheEntryError as err:
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:  # another process moved it first
            pass
        msg = f"{err}; moved aside to {aside.name} and computed again"
        log.warning(msg)
        warnings.warn(msg, stacklevel=3)
        return None


def write_entry(
    folder: Path, features: np.ndarray | None, labels: np.ndarray, paths: list[str], meta: dict
) -> None:
    """Write an entry's files into ``folder`` (``features.npy`` too unless None), ``meta.json`` last.

    ``meta.json`` records the size of every file and the SHA-256 of `CHECKED_FILES` for `load_cached`.
    """
    if features is not None:
        atomic_write(folder / "features.npy", _npy_writer(features))
    atomic_write(folder / "labels.npy", _npy_writer(labels))
    write_json(folder / "paths.json", paths)
    names = ("features.npy", *CHECKED_FILES)
    meta = {
        **meta,
        "sizes": {n: (folder / n).stat().st_size for n in names},
        "sha256": {n: sha256_file(folder / n) for n in CHECKED_FILES},
    }
    write_json(folder / "meta.json", meta)


def _npy_writer(array: np.ndarray):
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to a bare name
            np.save(fh, array, allow_pickle=False)

    return write


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write(path, json.dumps(obj))
