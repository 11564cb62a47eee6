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

Modules: `negprompt.distributed.comm` (process group, collectives), `negprompt.distributed.features`
(sharded feature cache) and `negprompt.distributed.text` (sharded prompt encoding).
"""

from negprompt.distributed.comm import (
    DistInfo,
    all_gather_rows,
    barrier,
    broadcast_object,
    broadcast_parameters,
    cleanup,
    get_info,
    init_distributed,
    is_main,
)
from negprompt.distributed.features import extract_features_distributed
from negprompt.distributed.text import ShardedTextFeatures, shard_classes

__all__ = [
    "DistInfo",
    "ShardedTextFeatures",
    "all_gather_rows",
    "barrier",
    "broadcast_object",
    "broadcast_parameters",
    "cleanup",
    "extract_features_distributed",
    "get_info",
    "init_distributed",
    "is_main",
    "shard_classes",
]
