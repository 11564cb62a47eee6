"""Frozen image features, computed once and cached: keyed, atomic, resumable, memory-mapped.

A cache entry is a folder named by the SHA-256 of its key: the backbone's identity (model, weights,
precision), the image transform, the dataset's fingerprint (paths, labels, file sizes and times) and
the view (``0`` = test transform; ``k >= 1`` = the k-th seeded augmented view). Changing any key part
gives a new entry. An entry is built in ``<key>.partial/`` (features in a memory-mapped ``.npy`` and a
progress file, so an interrupted extraction resumes where it stopped) and renamed to ``<key>/`` when
complete, so a folder with the final name always loads.

Several processes may share one cache: building an entry holds a lock on its ``<key>.partial/``
folder (so one process computes it while the others wait, then load it), every small file is
written through a unique temporary name (`negprompt.io.atomic_write`), and a finished entry is
never replaced. Loading verifies an entry cheaply (`negprompt.cache_entry`): the sizes of its
files, the shapes of its arrays and the SHA-256 of its small files against ``meta.json``. A
damaged entry is moved aside to ``<key>.damaged-<time>-<pid>`` with a warning that names it, and
computed again.

Unreadable images: a few (at most ``max_bad_fraction`` of the set, default 1%) are dropped with a
warning giving the count and the first paths; more than that is an error. Dropped images are absent
from ``paths``/``labels``/``features``, which stay aligned.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import warnings
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from negprompt.backbone import Backbone
from negprompt.cache_entry import (  # noqa: F401 (re-exported: the cache's public API)
    CachedFeatures,
    CacheEntryError,
    load_cached,
    load_or_quarantine,
    write_entry,
    write_json,
)
from negprompt.data.pixels import to_rgb
from negprompt.defaults import feature_cache_dir
from negprompt.io import file_lock, publish_dir, still_at
from negprompt.progress import tqdm

log = logging.getLogger(__name__)
FORMAT = 1


def default_cache_dir() -> Path:
    """The feature cache folder: ``$NEGPROMPT_CACHE`` or ``~/.cache/negprompt/features``."""
    return feature_cache_dir()


def cache_key(backbone: Backbone, imageset, view: int, seed: int, transform) -> dict:
    """The parts that identify a cache entry (JSON-ready)."""
    return {
        "format": FORMAT,
        "backbone": backbone.identity(),
        "transform": repr(transform),
        "dataset": {"name": imageset.name, "fingerprint": imageset.fingerprint(), "size": len(imageset)},
        "view": int(view),
        "seed": int(seed) if view else 0,
    }


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


class _Images(Dataset):
    def __init__(self, imageset, transform, view: int, seed: int, start: int, stop: int):
        self.imageset, self.transform, self.view, self.seed = imageset, transform, view, seed
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, j: int):
        i = self.start + j
        try:
            with Image.open(self.imageset.abspath(i)) as raw:
                im = to_rgb(raw, self.imageset.abspath(i))  # 16-bit / float scaled, not clipped
                if not self.view:
                    return self.transform(im), i, True
                # seeded augmentation: same image, view and seed give the same crop and flip
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed((self.seed * 1_000_003 + self.view) * 10_000_019 + i)
                    return self.transform(im), i, True
        except Exception as err:  # unreadable or not an image: the reason is kept
            return None, i, unreadable_reason(err)


def unreadable_reason(err: BaseException) -> str:
    """A short reason why an image cannot be read, for grouping the unreadable images of a set."""
    from PIL import UnidentifiedImageError

    if isinstance(err, FileNotFoundError):
        return "missing (no file, or a broken link)"
    if isinstance(err, PermissionError):
        return "no permission to read it"
    if isinstance(err, IsADirectoryError):
        return "a folder, not a file"
    if isinstance(err, Image.DecompressionBombError):
        return "more pixels than PIL's limit"
    if isinstance(err, UnidentifiedImageError):
        return "not an image format PIL can decode"
    if isinstance(err, OSError) and "truncated" in str(err).lower():
        return "truncated or damaged image data"
    return f"{type(err).__name__}: {str(err)[:80]}" if str(err) else type(err).__name__


def _collate(batch):
    good = [b for b in batch if b[2] is True]
    images = torch.stack([b[0] for b in good]) if good else None
    return images, [b[1] for b in good], [(b[1], b[2]) for b in batch if b[2] is not True]


def extract_features(
    backbone: Backbone,
    imageset,
    *,
    cache_dir: str | os.PathLike,
    view: int = 0,
    seed: int = 0,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
    max_bad_fraction: float = 0.01,
    shard: tuple[int, int] | None = None,
) -> CachedFeatures:
    """Image features of ``imageset`` under ``backbone``, from the cache or computed and cached.

    Args:
        backbone: frozen model (its device is used).
        imageset: an :class:`negprompt.data.ImageSet`.
        cache_dir: folder holding cache entries.
        view: 0 for the test transform, k >= 1 for the k-th augmented view (``train_transform``).
        seed: seed of the augmented views.
        batch_size, num_workers: data loading.
        max_bad_fraction: largest fraction of unreadable images dropped with a warning.
        shard: ``(rank, world)`` to compute only rows ``rank::world`` blocks (see
            :mod:`negprompt.distributed`); the shard is written to ``<key>.shard<rank>of<world>``.

    Returns:
        :class:`CachedFeatures`, memory-mapped.
    """
    if len(imageset) == 0:
        raise ValueError(f"dataset {imageset.name!r} has no images")
    transform = backbone.train_transform if view else backbone.preprocess
    key = cache_key(backbone, imageset, view, seed, transform)
    digest = key_digest(key)
    cache_dir = Path(cache_dir)
    start, stop = (0, len(imageset)) if shard is None else shard_range(len(imageset), *shard)
    name = digest if shard is None else f"{digest}.shard{shard[0]}of{shard[1]}"
    target = cache_dir / name
    part = cache_dir / f"{name}.partial"
    while True:  # one process computes under the lock of the partial folder; the others wait, then load
        if (entry := load_or_quarantine(target)) is not None:
            return entry
        part.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            try:
                fd = stack.enter_context(file_lock(part))
            except FileNotFoundError:
                continue  # published (renamed) between mkdir and the lock
            if not still_at(part, fd):
                continue  # published (renamed) by the process that held the lock
            if (entry := load_or_quarantine(target)) is not None:
                return entry
            _compute(
                backbone,
                imageset,
                transform,
                key,
                part,
                target,
                view,
                seed,
                start,
                stop,
                batch_size,
                num_workers,
                progress,
                max_bad_fraction,
            )
        return load_cached(target)


def _compute(
    backbone,
    imageset,
    transform,
    key,
    part,
    target,
    view,
    seed,
    start,
    stop,
    batch_size,
    num_workers,
    progress,
    max_bad_fraction,
) -> None:
    """Encode rows ``[start, stop)`` into the partial entry ``part`` (resuming) and publish ``target``."""
    part.mkdir(parents=True, exist_ok=True)
    feats, done, bad, reasons = _open_partial(part, key, stop - start, backbone.embed_dim)

    loader = DataLoader(
        _Images(imageset, transform, view, seed, start + done, stop),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
    )
    bar = tqdm(
        total=stop - start,
        initial=done,
        desc=f"features {imageset.name}" + (f" view {view}" if view else ""),
        unit="img",
        disable=not progress,
    )
    for images, idx, failed in loader:
        bad.extend(i for i, _ in failed)
        reasons.update({str(i): why for i, why in failed})
        if images is not None:
            out = backbone.encode_images(images).cpu().numpy().astype(np.float16)
            feats[np.asarray(idx) - start] = out
        done += len(idx) + len(failed)
        feats.flush()
        write_json(part / "progress.json", {"key": key, "done": done, "bad": bad, "reasons": reasons})
        bar.update(len(idx) + len(failed))
    bar.close()
    del feats
    _check_bad(imageset, bad, stop - start, max_bad_fraction, reasons)
    _finalise(part, target, imageset, key, start, stop, bad)


def shard_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous rows ``[start, stop)`` of shard ``rank`` out of ``world`` for ``n`` rows."""
    per = -(-n // world)
    return min(n, rank * per), min(n, (rank + 1) * per)


def _open_partial(part: Path, key: dict, n: int, dim: int):
    """Open (or restart) the partial entry in ``part``: features memmap, rows done, bad rows."""
    progress_file = part / "progress.json"
    feat_file = part / "features.npy"
    if progress_file.is_file() and feat_file.is_file():
        progress = json.loads(progress_file.read_text())
        if progress.get("key") == key:
            log.info("resuming feature extraction at %d/%d", progress["done"], n)
            reasons = dict(progress.get("reasons") or {})
            return np.load(feat_file, mmap_mode="r+"), int(progress["done"]), list(progress["bad"]), reasons
    feats = np.lib.format.open_memmap(feat_file, mode="w+", dtype=np.float16, shape=(n, dim))
    _reserve(feat_file)
    write_json(progress_file, {"key": key, "done": 0, "bad": [], "reasons": {}})
    return feats, 0, [], {}


def _reserve(file: Path) -> None:
    """Allocate the whole file now: a full disk is an ``OSError`` here, not a bus error mid-way."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(file, "rb+") as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            os.posix_fallocate(fh.fileno(), 0, size)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OSError(err.errno, err.strerror, str(file)) from None
            # the file system cannot pre-allocate (EOPNOTSUPP, EINVAL): write as before


def _grouped(imageset, bad: list[int], reasons: dict[str, str]) -> str:
    """The unreadable images grouped by reason: ``reason: count (first: path, path)``, largest first."""
    groups: dict[str, list[int]] = {}
    for i in bad:
        groups.setdefault(reasons.get(str(i), "cannot be read"), []).append(i)
    return "; ".join(
        f"{why}: {len(rows)} (first: {', '.join(str(imageset.abspath(i)) for i in rows[:3])})"
        for why, rows in sorted(groups.items(), key=lambda kv: -len(kv[1]))
    )


def _check_bad(imageset, bad: list[int], n: int, max_fraction: float, reasons: dict | None = None) -> None:
    if not bad:
        return
    first = _grouped(imageset, bad, reasons or {})
    if len(bad) > max_fraction * n or len(bad) == n:
        raise ValueError(
            f"{len(bad)} of {n} images of {imageset.name!r} cannot be read, by reason: {first}; "
            "remove or replace them (or, from Python, raise max_bad_fraction)"
        )
    msg = f"{len(bad)} of {n} images of {imageset.name!r} cannot be read and are left out, by reason: {first}"
    log.warning(msg)
    warnings.warn(msg, stacklevel=3)


def _finalise(part: Path, target: Path, imageset, key: dict, start: int, stop: int, bad: list[int]) -> None:
    """Drop unreadable rows, write labels/paths/meta, then rename the folder into place."""
    bad_set = set(bad)
    keep = np.array([i for i in range(start, stop) if i not in bad_set], dtype=np.int64)
    if bad_set:
        full = np.load(part / "features.npy", mmap_mode="r")
        np.save(part / "features.kept.npy", np.ascontiguousarray(full[keep - start]))
        del full
        os.replace(part / "features.kept.npy", part / "features.npy")
    labels = np.asarray(imageset.labels, dtype=np.int64)[keep] if len(keep) else np.zeros(0, np.int64)
    (part / "progress.json").unlink(missing_ok=True)
    meta = {
        "key": key,
        "count": len(keep),
        "dropped": [imageset.paths[i] for i in sorted(bad_set)],
        "rows": [start, stop],
    }
    write_entry(part, None, labels, [imageset.paths[i] for i in keep], meta)
    publish_dir(part, target)  # another process that finished the same entry first wins
