"""Shared pieces of the benchmarks: device setup, timing, memory, FLOP counts, the environment."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

MODEL = "ViT-B-16"
REPO = Path(__file__).resolve().parent.parent


def setup(device: str, threads: int | None) -> torch.device:
    """Quiet random-weights warnings, set CPU threads, check the device."""
    import logging
    import warnings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", message=".*RANDOM WEIGHTS.*")
    logging.getLogger("negprompt").setLevel(logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was given but no CUDA device is visible")
    return dev


def load_vit(device: torch.device):
    """ViT-B-16 with random weights (seeded), frozen, fp32, on ``device``."""
    from negprompt.backbone import load_backbone

    torch.manual_seed(0)
    return load_backbone(MODEL, "none", device=device)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON atomically (a temporary file in the same folder, then rename)."""
    import json
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(json.dumps(data, indent=1, default=str))
    os.replace(tmp.name, path)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> dict:
    """Median wall time (s) of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls.

    Also the median process CPU time per call (``cpu_s``, all threads): on a shared machine it is
    inflated less than wall time by other processes.
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
        "cpu_s": statistics.median(cpu),
        "warmup": warmup,
        "repeats": repeats,
    }


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int | None = None, repeats: int = 5) -> float:
    """Measured FLOP/s of a large ``n × n`` matmul in ``dtype``, best of ``repeats`` (the practical peak)."""
    n = n or (8192 if device.type == "cuda" else 4096)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    res = timeit(lambda: a @ b, device, warmup=2, repeats=repeats)
    return 2 * n**3 / min(res["times_s"])  # the best run: the practical peak


def text_tower_flops(
    groups: list[tuple[int, ...]], width: int, layers: int, embed: int, backward: bool
) -> float:
    """Matmul FLOPs of the text transformer on prompt groups ``[(P, T), …]`` (P prompts of T tokens).

    A group ``(P, T, K)`` has T query tokens attending to K keys (attention 4·P·T·K·W): the suffixes
    of the shared-prefix encoding (K = prefix + T). A group ``(P, T, K, 0)`` has no EOT read-out (the
    prefixes: no text projection).

    Forward, per layer: 24·P·T·W² for the four projections (q, k, v, out: 4·W², MLP: 8·W² multiply-adds
    per token, 2 FLOPs each) plus 4·P·T²·W for attention (Q·Kᵀ and A·V); then 2·P·W·D for the text
    projection of the EOT token. The weights are frozen, so backward computes input gradients only:
    1× the forward FLOPs of each projection and 2× those of attention (both operands of Q·Kᵀ and
    of A·V are activations). Forward + backward = 48·P·T·W² + 12·P·T²·W per layer (+ 4·P·W·D),
    not the usual 3× forward (which includes weight gradients).
    """
    total = 0.0
    for p, t, *rest in groups:
        keys = rest[0] if rest else t
        read = rest[1] if len(rest) > 1 else 1
        lin, att, proj = 24 * p * t * width**2, 4 * p * t * keys * width, 2 * p * width * embed * read
        total += layers * (lin + att) + proj
        if backward:
            total += layers * (lin + 2 * att) + proj
    return total


def text_shape(backbone) -> dict:
    tower = backbone.text_tower
    return {
        "width": int(tower.positional_embedding.shape[1]),
        "layers": len(tower.transformer.resblocks),
        "embed": backbone.embed_dim,
    }


def peak_memory(device: torch.device) -> dict:
    """Peak memory: GPU allocator peak, or the peak resident set of this process (CPU, ``VmHWM``)."""
    if device.type == "cuda":
        return {
            "peak_gb": torch.cuda.max_memory_allocated(device) / 2**30,
            "kind": "torch.cuda.max_memory_allocated",
        }
    return {"peak_gb": _proc_status_gb("VmHWM"), "kind": "peak resident set (VmHWM)"}


def reset_peak(device: torch.device) -> dict:
    """Reset the peak memory counter; returns the memory in use now (``before_gb``).

    On Linux the resident-set peak is reset through ``/proc/self/clear_refs``; ``ru_maxrss`` is not
    used because a child process inherits its parent's peak.
    """
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        return {"before_gb": torch.cuda.memory_allocated(device) / 2**30}
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return {"before_gb": _proc_status_gb("VmRSS")}


def _proc_status_gb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def environment(device: torch.device) -> dict:
    """Date, machine, software versions and load: what a result row needs to be read later."""
    import numpy
    import open_clip

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_model() + f", {torch.get_num_threads()} threads"
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": name,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "loadavg": load,
        "command": _command(),
    }


def _command() -> str:
    """This run's command line as ``python -m benchmarks.<script> …`` (no paths of this machine)."""
    script = Path(sys.argv[0]).resolve()
    try:
        module = ".".join(script.relative_to(REPO).with_suffix("").parts)
        return " ".join(["python", "-m", module, *sys.argv[1:]])
    except ValueError:
        return " ".join(["python", script.name, *sys.argv[1:]])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def imagenet_names(n: int) -> list[str]:
    """The first ``n`` ImageNet class names (clean names)."""
    from negprompt.data import imagenet_classes

    return [c.name for c in imagenet_classes()[:n]]
