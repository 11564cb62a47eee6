"""The GPU check: one script, a few minutes on a CUDA machine, every number the GPU targets need.

Prints and records (JSON, written after every section so a partial run still leaves its results):
the card and software; the measured bf16 / fp32 matmul rates; our stage-2 step vs the authors'
stage-3 step (``faithful``, see benchmarks/baselines.py) at C = 1000, M = 2, batch 64, ViT-B-16 with
random weights; peak memory of each; kernels, host syncs and the GPU-busy share of one profiled step
of ours; bf16 vs fp32 text-feature agreement; a one-epoch bf16 stage-2 training run. Each section
runs in its own try/except: a failure is recorded (``"error"``) and the next section still runs.

    python -m benchmarks.gpu_check                                   # CUDA, writes benchmarks/results-cuda.json
    python -m benchmarks.gpu_check --out /tmp/gpu.json
    python -m benchmarks.gpu_check --dry-run --out /tmp/dry.json     # CPU, tiny model, seconds

Depends only on torch, open_clip, numpy and this repository.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

from benchmarks import bench_step
from benchmarks.common import (
    MODEL,
    REPO,
    environment,
    matmul_rate,
    peak_memory,
    reset_peak,
    setup,
    sync,
    text_shape,
    timeit,
    write_json,
)

SYNC_CALLS = ("synchronize", "cudamemcpy", "cudamemcpy2d", "cudastreamwaitevent")


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def card(device: torch.device) -> dict:
    """The device and software versions."""
    import numpy
    import open_clip

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "open_clip": open_clip.__version__,
        "numpy": numpy.__version__,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(
            name=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_gb=props.total_memory / 2**30,
            multiprocessors=props.multi_processor_count,
        )
    return out


def profile_step(step, device: torch.device) -> dict:
    """Kernels, host-device syncs and the GPU-busy share of one step under ``torch.profiler``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    step()
    sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        step()
        sync(device)
        wall = time.perf_counter() - start
    kernels = launches = syncs = 0
    busy_us = 0.0
    sync_names: dict[str, int] = {}
    for evt in prof.key_averages():
        name = evt.key.lower()
        dev_type = str(getattr(evt, "device_type", "")).lower()
        self_dev = getattr(evt, "self_device_time_total", None)
        if self_dev is None:
            self_dev = getattr(evt, "self_cuda_time_total", 0.0)
        if "cuda" in dev_type and self_dev > 0:
            kernels += evt.count
            busy_us += self_dev
        if "launchkernel" in name:
            launches += evt.count
        if any(s in name for s in SYNC_CALLS) and "async" not in name:
            syncs += evt.count
            sync_names[evt.key] = evt.count
    return {
        "profiled_step_s": wall,
        "kernels": kernels,
        "kernel_launches": launches,
        "host_syncs": syncs,
        "sync_calls": sync_names,
        "gpu_busy_s": busy_us / 1e6,
        "gpu_busy_share": busy_us / 1e6 / wall if wall > 0 else None,
        "note": "host_syncs counts cuda*Synchronize and blocking cudaMemcpy calls, including the one "
        "cudaDeviceSynchronize that ends the timed step; gpu_busy_share = kernel time / wall time",
    }


def time_pattern(
    pattern: str, device, classes: int, n_neg: int, backbone, warmup: int, repeats: int, compile_mode=None
) -> dict:
    """Median step time and peak memory of one pattern in this process (C halved on out-of-memory)."""
    c = classes
    while True:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        try:
            step, extra = bench_step.build(
                pattern, device, c, n_neg, backbone=backbone, compile_mode=compile_mode
            )
            image_times = extra.pop("image_times", None)
            memory = reset_peak(device)
            res = timeit(step, device, warmup, repeats)
            out = {
                "pattern": pattern,
                "classes": c,
                **extra,
                **res,
                "memory": {**memory, **peak_memory(device)},
            }
            if image_times:
                out["image_part_s"] = sorted(image_times[-repeats:])[len(image_times[-repeats:]) // 2]
            if c != classes and image_times:
                img = out["image_part_s"]
                out["extrapolated_median_s"] = img + classes / c * (out["median_s"] - img)
            out["step"] = step
            return out
        except torch.cuda.OutOfMemoryError as exc:
            log(f"{pattern} out of memory at C={c}: {str(exc).splitlines()[0]}")
            if c == 1:
                raise
            c //= 2


def agreement(backbone, classes: int, device) -> dict:
    """bf16 autocast vs fp32 negative text features (shared prefixes), and fp32 vs the full 77 tokens."""
    from benchmarks.common import imagenet_names
    from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder

    learner = PromptLearner(TextEncoder(backbone), PromptConfig(n_neg=2, neg_noise=0.5))
    cls = learner.class_names(imagenet_names(classes))
    with torch.no_grad():
        fp32 = learner.negative_features(cls)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            bf16 = learner.negative_features(cls)
        full = learner.negative_features(cls, mode="full")
    cos = (fp32 * bf16).sum(-1)
    return {
        "bf16_vs_fp32_max_abs": float((bf16 - fp32).abs().max()),
        "bf16_vs_fp32_min_cosine": float(cos.min()),
        "prefix_fp32_vs_full_fp32_max_abs": float((fp32 - full).abs().max()),
    }


def smoke_train(backbone, classes: int, per_class: int) -> dict:
    """One epoch of stage-2 training in bf16 on random unit features (labels balanced)."""
    from benchmarks.common import imagenet_names
    from negprompt.train import TrainConfig, train_prompts

    gen = torch.Generator().manual_seed(0)
    n = classes * per_class
    feats = torch.nn.functional.normalize(torch.randn(n, backbone.embed_dim, generator=gen), dim=-1)
    labels = torch.arange(classes).repeat(per_class)
    config = TrainConfig(stage=2, epochs=1, amp="bf16", select="last")
    start = time.perf_counter()
    result = train_prompts(
        backbone, imagenet_names(classes), feats.numpy(), labels.numpy(), config, progress=False
    )
    seconds = time.perf_counter() - start
    record = result.history[-1]
    finite = all(
        isinstance(v, float) and v == v and abs(v) != float("inf")
        for v in record.values()
        if isinstance(v, float)
    )
    return {
        "images": n,
        "steps": -(-n // config.batch_size),
        "seconds": seconds,
        "finite": finite,
        "last_epoch": record,
    }


def run(args) -> dict:
    """All sections; the JSON at ``args.out`` is rewritten after each one."""
    dry = args.dry_run
    device = setup("cpu" if dry else args.device, 1 if dry else None)
    results: dict = {"dry_run": dry, "command": " ".join(["python -m benchmarks.gpu_check", *sys.argv[1:]])}
    c, m = args.classes, args.n_neg

    def section(name: str, fn):
        log(f"{name} …")
        start = time.perf_counter()
        try:
            results[name] = fn()
            log(f"{name}: {_short(results[name])}")
        except Exception as exc:  # record and go on: a partial result beats none
            results[name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-2000:],
            }
            log(f"{name} FAILED: {type(exc).__name__}: {exc}")
        if isinstance(results[name], dict):
            results[name]["section_s"] = time.perf_counter() - start
        write_json(args.out, results)

    section("environment", lambda: {**environment(device), **card(device)})
    if not dry and device.type != "cuda":
        raise SystemExit("no CUDA device is visible; use --dry-run for the CPU check")
    from negprompt.backbone import TINY_MODEL, load_backbone

    torch.manual_seed(0)
    backbone = load_backbone(TINY_MODEL if dry else MODEL, "none", device=device)
    results["model"] = {"name": TINY_MODEL if dry else MODEL, "weights": "random", **text_shape(backbone)}

    def matmul():
        n = 256 if dry else None
        return {
            "bf16_tflop_per_s": matmul_rate(device, torch.bfloat16, n) / 1e12,
            "fp32_tflop_per_s": matmul_rate(device, torch.float32, n) / 1e12,
        }

    section("matmul", matmul)
    held: dict = {}

    def ours():
        res = time_pattern("ours", device, c, m, backbone, args.warmup, args.repeats)
        held["ours"] = res.pop("step")
        rate = results.get("matmul", {}).get(
            "bf16_tflop_per_s" if device.type == "cuda" else "fp32_tflop_per_s"
        )
        if rate:
            res["floor_s"] = res["text_flops"] / (rate * 1e12)
            res["achieved_fraction"] = res["floor_s"] / res["median_s"]
        return res

    section("ours", ours)
    section("profile_ours", lambda: profile_step(held["ours"], device))
    held.clear()

    def faithful():
        res = time_pattern("faithful", device, c, m, backbone, 1, args.baseline_repeats)
        res.pop("step")
        return res

    section("faithful", faithful)
    if "median_s" in results.get("ours", {}) and "median_s" in results.get("faithful", {}):
        base = results["faithful"].get("extrapolated_median_s", results["faithful"]["median_s"])
        results["speedup_vs_faithful"] = base / results["ours"]["median_s"]
        log(f"speed-up vs faithful: {results['speedup_vs_faithful']:.1f}x")
    section("agreement", lambda: agreement(backbone, c, device))
    section("smoke_train", lambda: smoke_train(backbone, c, args.per_class))
    if args.compile:  # last: compiling may take minutes

        def ours_compiled():
            res = time_pattern("ours", device, c, m, backbone, args.warmup + 3, args.repeats, args.compile)
            res.pop("step")
            res["compile_mode"] = args.compile
            return res

        section("ours_compiled", ours_compiled)
    results["total_s"] = time.perf_counter() - START
    write_json(args.out, results)
    log(f"done in {results['total_s']:.0f} s; results in {args.out}")
    return results


def _short(value) -> str:
    if not isinstance(value, dict):
        return str(value)
    keys = ("name", "median_s", "peak_gb", "kernels", "host_syncs", "gpu_busy_share", "seconds")
    parts = [
        f"{k}={value[k]:.4g}" if isinstance(value[k], float) else f"{k}={value[k]}"
        for k in keys
        if k in value
    ]
    if "memory" in value:
        parts.append(f"peak_gb={value['memory']['peak_gb']:.2f}")
    return ", ".join(parts) or ", ".join(f"{k}={v}" for k, v in list(value.items())[:4])


START = time.perf_counter()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, tiny sizes (the test suite)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results-cuda.json")
    parser.add_argument("--classes", type=int, default=None, help="default 1000 (dry run: 5)")
    parser.add_argument("--n-neg", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=None, help="ours (default 5; dry run 0)")
    parser.add_argument("--repeats", type=int, default=None, help="ours (default 30; dry run 1)")
    parser.add_argument("--baseline-repeats", type=int, default=None, help="faithful (default 5; dry run 1)")
    parser.add_argument(
        "--compile",
        default=None,
        help="also time ours with the suffix pass under torch.compile(mode=…), last",
    )
    parser.add_argument("--per-class", type=int, default=None, help="smoke run images per class (4; dry 4)")
    args = parser.parse_args(argv)
    dry = args.dry_run
    args.classes = args.classes or (5 if dry else 1000)
    args.warmup = args.warmup if args.warmup is not None else (0 if dry else 5)
    args.repeats = args.repeats or (1 if dry else 30)
    args.baseline_repeats = args.baseline_repeats or (1 if dry else 5)
    args.per_class = args.per_class or 4
    with contextlib.suppress(AttributeError):
        sys.stdout.reconfigure(line_buffering=True)
    return run(args)


if __name__ == "__main__":
    main()
