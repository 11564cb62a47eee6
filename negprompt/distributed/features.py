"""Sharded feature extraction: each rank encodes a slice, rank 0 merges the single-process cache entry."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch.distributed as dist

from negprompt.distributed.comm import broadcast_object, get_info
from negprompt.features import (
    CachedFeatures,
    cache_key,
    extract_features,
    key_digest,
    load_cached,
    load_or_quarantine,
    shard_range,
    write_entry,
)
from negprompt.io import publish_dir, temp_name

log = logging.getLogger(__name__)


def extract_features_distributed(
    backbone,
    imageset,
    *,
    cache_dir: str | os.PathLike,
    view: int = 0,
    seed: int = 0,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
    max_bad_fraction: float = 0.01,
) -> CachedFeatures:
    """:func:`negprompt.features.extract_features` split across ranks; every rank gets the merged entry.

    Each rank encodes ``shard_range(n, rank, world)`` into ``<key>.shard<r>of<w>``; rank 0 merges the
    shards into ``<key>/`` (the entry a single process writes: same folder, same files; the feature
    bytes are identical when ``batch_size`` divides the shard size, so that every image is encoded in
    the same batch as in one process) and removes the shards; the others wait and load it.
    Unreadable images are counted over the whole set against ``max_bad_fraction``, as in one process.
    Every rank must call it with the same arguments; ``cache_dir`` must be shared by all ranks.

    Raises:
        RuntimeError: a rank failed (its error is named) or the shards are not visible to rank 0.
    """
    info = get_info()
    kwargs = dict(view=view, seed=seed, batch_size=batch_size, num_workers=num_workers)
    if info.world == 1:
        return extract_features(
            backbone,
            imageset,
            cache_dir=cache_dir,
            progress=progress,
            max_bad_fraction=max_bad_fraction,
            **kwargs,
        )
    cache_dir = Path(cache_dir)
    key = cache_key(backbone, imageset, view, seed, backbone.train_transform if view else backbone.preprocess)
    final = cache_dir / key_digest(key)
    # rank 0 alone checks the entry (a damaged one is moved aside once, then computed again)
    if broadcast_object(load_or_quarantine(final) is not None if info.is_main else None):
        return load_cached(final)
    error = None
    start, stop = shard_range(len(imageset), info.rank, info.world)
    try:
        if stop > start:
            extract_features(
                backbone,
                imageset,
                cache_dir=cache_dir,
                progress=progress and info.is_main,
                max_bad_fraction=1.0,  # counted over the whole set after the merge
                shard=(info.rank, info.world),
                **kwargs,
            )
    except Exception as exc:  # reported to every rank below instead of leaving them waiting
        error = f"rank {info.rank}: {type(exc).__name__}: {exc}"
    errors = [None] * info.world
    dist.all_gather_object(errors, error)
    failed = [e for e in errors if e]
    if not failed and info.is_main:
        try:
            _merge_shards(cache_dir, final, key, imageset, info.world, max_bad_fraction)
        except Exception as exc:
            failed = [f"rank 0 (merge): {type(exc).__name__}: {exc}"]
    failed = broadcast_object(failed)
    if failed:
        raise RuntimeError("distributed feature extraction failed: " + "; ".join(failed))
    return load_cached(final)


def _merge_shards(cache_dir: Path, final: Path, key: dict, imageset, world: int, max_bad: float) -> None:
    digest, n = final.name, len(imageset)
    shards = []
    for r in range(world):
        path = cache_dir / f"{digest}.shard{r}of{world}"
        start, stop = shard_range(n, r, world)
        if stop == start:
            continue
        if not (path / "meta.json").is_file():
            raise FileNotFoundError(
                f"shard {path} is not visible to rank 0: cache_dir must be on a file system shared by all ranks"
            )
        shard = load_cached(path)
        if shard.meta["key"] != key or shard.meta["rows"] != [start, stop]:
            raise ValueError(f"shard {path} belongs to another entry or split; delete it and run again")
        shards.append(shard)
    dropped = [p for s in shards for p in s.meta["dropped"]]
    if dropped and (len(dropped) > max_bad * n or len(dropped) == n):
        raise ValueError(
            f"{len(dropped)} of {n} images of {imageset.name!r} cannot be read (first: {', '.join(dropped[:5])}); "
            "remove or replace them (or, from Python, raise max_bad_fraction)"
        )
    if dropped:
        log.warning("%d of %d images of %r cannot be read and are left out", len(dropped), n, imageset.name)
    tmp = temp_name(final)
    tmp.mkdir(parents=True)
    features = np.concatenate([np.asarray(s.features) for s in shards]).astype(np.float16, copy=False)
    labels = np.concatenate([s.labels for s in shards]).astype(np.int64, copy=False)
    meta = {"key": key, "count": int(features.shape[0]), "dropped": dropped, "rows": [0, n]}
    write_entry(tmp, features, labels, [p for s in shards for p in s.paths], meta)
    del shards, features
    publish_dir(tmp, final)  # another job that finished the same entry first wins
    for r in range(world):
        shutil.rmtree(cache_dir / f"{digest}.shard{r}of{world}", ignore_errors=True)
