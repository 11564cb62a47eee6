"""Several processes (launched by ``torchrun``): sharded feature extraction and prompt encoding.

One process per GPU (NCCL) or per CPU worker (gloo). Two things are split across the ``world``
ranks, everything else is replicated:

- **Feature extraction.** Rank r encodes rows ``shard_range(n, r, world)`` of the image set; rank 0
  then merges the shards into the one cache entry a single process would have written (same key
  folder, same ``features.npy`` / ``labels.npy`` / ``paths.json`` / ``meta.json``), atomically, and
  every rank loads it. The cache folder must be visible to all ranks (a shared file system).
- **Prompt encoding during training.** The prompts of a step's classes are split across ranks
  (balanced by token length, :func:`shard_classes`); each rank encodes its part and the features are
  all-gathered *with* their gradients, so every rank holds the full ``[C, D]`` / ``[C, M, D]``
  features and computes the full loss.

Gradient convention. The objective is the *mean over ranks* of the per-rank losses. The gather's
backward averages the gradient of the gathered features over ranks and hands each rank the rows it
encoded; the shared contexts' gradient is then *summed* over ranks, since each rank holds only the
part that flows through its own rows. With the same global batch on every rank (every rank computes
the same loss L) or with equal slices of it (L = mean of the slice losses, because L_pd and L_nn are
the same on every rank), the context gradient on every rank equals the single-process gradient of
L, so replicated SGD steps keep the contexts identical.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from negprompt.features import (
    CachedFeatures,
    cache_key,
    extract_features,
    key_digest,
    load_cached,
    shard_range,
)

log = logging.getLogger(__name__)

_INFO: DistInfo | None = None


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its ``rank`` of ``world``, its ``local_rank`` on the node, its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(
    backend: str | None = None, device: str | None = None, timeout_min: float = 60
) -> DistInfo:
    """Join the process group described by torchrun's environment, or run as one process.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``. Without them
    (or with ``WORLD_SIZE=1``) nothing is initialised and a single-process :class:`DistInfo` is
    returned. ``backend`` defaults to ``nccl`` when CUDA is available (device ``cuda:LOCAL_RANK``),
    else ``gloo`` (device ``cpu``, or ``device`` if given).

    Raises:
        RuntimeError: NCCL without enough GPUs on the node, or an incomplete torchrun environment.
    """
    global _INFO
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        _INFO = DistInfo(device=dev)
        return _INFO
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world} but {missing} are not set; launch with torchrun --nproc_per_node=N"
        )
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"local rank {local} has no GPU ({torch.cuda.device_count()} visible); "
                "start at most one process per GPU (--nproc_per_node)"
            )
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device(device or "cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(minutes=timeout_min))
    _INFO = DistInfo(rank=rank, world=world, local_rank=local, device=dev)
    log.info("rank %d/%d on %s (%s)", rank, world, dev, backend)
    return _INFO


def get_info() -> DistInfo:
    """The :class:`DistInfo` of this process (single-process when :func:`init_distributed` was not called)."""
    if _INFO is not None:
        return _INFO
    if dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, _comm_device())
    return DistInfo()


def is_main() -> bool:
    """True on rank 0 and in a single process: the process that writes run directories and logs."""
    return get_info().rank == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def cleanup() -> None:
    """Leave the process group (call once at the end of a distributed run)."""
    global _INFO
    if dist.is_initialized():
        dist.destroy_process_group()
    _INFO = None


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def _comm_device() -> torch.device:
    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )


def broadcast_object(obj, src: int = 0):
    """``obj`` of rank ``src`` on every rank (any picklable object)."""
    if _world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@torch.no_grad()
def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Copy the parameters and buffers of rank ``src`` to every rank (replicas start identical)."""
    if _world() == 1:
        return
    dev = _comm_device()
    for t in [*module.parameters(), *module.buffers()]:
        buf = t.detach().to(dev).contiguous()
        dist.broadcast(buf, src=src)
        t.copy_(buf.to(t.device))


@torch.no_grad()
def all_gather_rows(x: Tensor) -> Tensor:
    """Concatenate ``x`` ``[n_r, ...]`` of every rank in rank order (sizes may differ; no gradient).

    Use it to give every rank the whole global batch (e.g. image features encoded on the fly).
    """
    if _world() == 1:
        return x
    dev = _comm_device()
    counts = [torch.zeros(1, dtype=torch.long, device=dev) for _ in range(_world())]
    dist.all_gather(counts, torch.tensor([x.shape[0]], device=dev))
    sizes = [int(c) for c in counts]
    pad = x.new_zeros(max(sizes), *x.shape[1:], device=dev)
    pad[: x.shape[0]] = x.to(dev)
    bufs = [torch.empty_like(pad) for _ in sizes]
    dist.all_gather(bufs, pad)
    return torch.cat([b[:n] for b, n in zip(bufs, sizes)]).to(x.device)


# --------------------------------------------------------------------------- sharded feature cache


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
    if broadcast_object((final / "meta.json").is_file()):
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
            "remove or replace them, or raise max_bad_fraction"
        )
    if dropped:
        log.warning("%d of %d images of %r cannot be read and are left out", len(dropped), n, imageset.name)
    tmp = cache_dir / f"{digest}.merge{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    features = np.concatenate([np.asarray(s.features) for s in shards]).astype(np.float16, copy=False)
    np.save(tmp / "features.npy", features)
    np.save(tmp / "labels.npy", np.concatenate([s.labels for s in shards]).astype(np.int64, copy=False))
    _write_json(tmp / "paths.json", [p for s in shards for p in s.paths])
    meta = {"key": key, "count": int(features.shape[0]), "dropped": dropped, "rows": [0, n]}
    _write_json(tmp / "meta.json", meta)
    del shards, features
    if final.exists():  # another job finished the same entry first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, final)
    for r in range(world):
        shutil.rmtree(cache_dir / f"{digest}.shard{r}of{world}", ignore_errors=True)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- sharded prompt encoding


def shard_classes(lengths: Tensor, world: int) -> list[Tensor]:
    """Split positions ``0 … C−1`` into ``world`` parts balanced by prompt length.

    Positions are sorted by token length and dealt out in turn, so every rank gets the same number
    of prompts (±1) of every length: equal work, and the same length groups on every rank.

    Args:
        lengths: ``[C]`` name-token counts (``ClassNames.lengths[class_idx]``).

    Returns:
        ``world`` sorted int64 index tensors whose union is ``0 … C−1``.
    """
    order = torch.argsort(lengths.cpu(), stable=True)
    return [order[r::world].sort().values for r in range(world)]


class _GatherRows(torch.autograd.Function):
    """Forward: concatenate every rank's rows. Backward: mean of the gradient over ranks, own rows."""

    @staticmethod
    def forward(ctx, local: Tensor, counts: tuple[int, ...], rank: int) -> Tensor:
        ctx.counts, ctx.rank = counts, rank
        dev = _comm_device()
        pad = local.new_zeros(max(counts), *local.shape[1:], device=dev)
        pad[: local.shape[0]] = local.detach().to(dev)
        bufs = [torch.empty_like(pad) for _ in counts]
        dist.all_gather(bufs, pad)
        return torch.cat([b[:n] for b, n in zip(bufs, counts)]).to(local.device)

    @staticmethod
    def backward(ctx, grad: Tensor):
        g = grad.detach().to(_comm_device()).contiguous().clone()
        dist.all_reduce(g)
        g = (g / len(ctx.counts)).to(grad.device)
        start = sum(ctx.counts[: ctx.rank])
        return g[start : start + ctx.counts[ctx.rank]], None, None


class _SumGrad(torch.autograd.Function):
    """Identity forward; backward sums the gradient over ranks (parameters replicated on all ranks)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        g = grad.detach().to(_comm_device()).contiguous().clone()
        dist.all_reduce(g)
        return g.to(grad.device)


class ShardedTextFeatures:
    """A ``TextFeatureFn`` for :func:`negprompt.train.step.train_step` that splits prompts across ranks.

    ``fn(learner, classes, class_idx [C'], kind) -> [C', D]`` (``"pos"``) or ``[C', M, D]`` (``"neg"``),
    the same features as one process computes, on every rank; the contexts' gradients after
    ``backward()`` are those of the single-process loss (see the module docstring). Every rank must
    call it with the same ``class_idx`` and hold identical contexts (:func:`broadcast_parameters`).
    In a single process it encodes everything locally.
    """

    def __init__(self, mode: str = "length"):
        self.mode = mode

    def __call__(self, learner, classes, class_idx: Tensor, kind: Literal["pos", "neg"]) -> Tensor:
        if kind not in ("pos", "neg"):
            raise ValueError(f"kind must be 'pos' or 'neg', got {kind!r}")
        class_idx = class_idx.cpu().long()
        world = _world()
        if world == 1:
            if kind == "pos":
                return learner.positive_features(classes, class_idx, mode=self.mode)
            return learner.negative_features(classes, class_idx, mode=self.mode)
        parts = shard_classes(classes.lengths[class_idx], world)
        rank = dist.get_rank()
        local = self._encode(learner, classes, class_idx[parts[rank]], kind)
        counts = tuple(len(p) for p in parts)
        full = _GatherRows.apply(local, counts, rank)
        order = torch.cat(parts)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        return full[inverse.to(full.device)]

    def _encode(self, learner, classes, idx: Tensor, kind: str) -> Tensor:
        """This rank's features, with the prompts laid out as in ``PromptLearner.{positive,negative}_features``."""
        n, dim = len(idx), learner.encoder.backbone.embed_dim
        if kind == "pos":
            ctx = _SumGrad.apply(learner.pos_ctx)
            shape, prompt_cls = (n, dim), idx
            if learner.config.class_specific:
                prompt_ctx = ctx[idx.to(ctx.device)]
            else:
                prompt_ctx = ctx.unsqueeze(0).expand(n, -1, -1)
        else:
            ctx = _SumGrad.apply(learner.neg_ctx)
            m = ctx.shape[0]
            shape, prompt_cls = (n, m, dim), idx.repeat_interleave(m)
            prompt_ctx = ctx.unsqueeze(0).expand(n, -1, -1, -1).reshape(n * m, *ctx.shape[1:])
        if n == 0:  # keep the context in the graph so that every rank joins the gradient sum
            return ctx.new_zeros(shape, dtype=torch.float32) + 0 * ctx.sum()
        return learner.encoder.encode(prompt_ctx, classes, prompt_cls, self.mode).view(shape)
