"""Process-group set-up and the few collectives the sharded steps use (no-ops in one process)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from negprompt.defaults import resolve_device

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
        dev = torch.device(resolve_device(device))
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
        dev = torch.device(resolve_device(device))
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
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, comm_device())
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


def world_size() -> int:
    """Number of processes in the group (1 without one)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def comm_device() -> torch.device:
    """Where collective tensors live: the current GPU under NCCL, else the CPU."""
    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )


def broadcast_object(obj, src: int = 0):
    """``obj`` of rank ``src`` on every rank (any picklable object)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@torch.no_grad()
def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Copy the parameters and buffers of rank ``src`` to every rank (replicas start identical)."""
    if world_size() == 1:
        return
    dev = comm_device()
    for t in [*module.parameters(), *module.buffers()]:
        buf = t.detach().to(dev).contiguous()
        dist.broadcast(buf, src=src)
        t.copy_(buf.to(t.device))


@torch.no_grad()
def all_gather_rows(x: Tensor) -> Tensor:
    """Concatenate ``x`` ``[n_r, ...]`` of every rank in rank order (sizes may differ; no gradient).

    Use it to give every rank the whole global batch (e.g. image features encoded on the fly).
    """
    if world_size() == 1:
        return x
    dev = comm_device()
    counts = [torch.zeros(1, dtype=torch.long, device=dev) for _ in range(world_size())]
    dist.all_gather(counts, torch.tensor([x.shape[0]], device=dev))
    sizes = [int(c) for c in counts]
    pad = x.new_zeros(max(sizes), *x.shape[1:], device=dev)
    pad[: x.shape[0]] = x.to(dev)
    bufs = [torch.empty_like(pad) for _ in sizes]
    dist.all_gather(bufs, pad)
    return torch.cat([b[:n] for b, n in zip(bufs, sizes)]).to(x.device)
