"""A stage-2 training step of negprompt vs the authors' compute patterns, side by side.

- ``ours``: cached image features (batch 64), positive prompts encoded once before training (not in
  the step), the C × M negatives encoded exactly with shared prefixes (each negative context's
  ``[SOS] + context`` once, then the name and EOT tokens grouped by length), bf16 autocast on CUDA
  (fp32 on CPU), L_img + L_pd + L_nn, backward to the negative contexts, SGD step:
  :func:`negprompt.train.step.train_step` as training runs it.
- ``faithful`` (the headline baseline), ``faithful_loops`` and ``all_prompts``: the authors'
  patterns, see :mod:`benchmarks.baselines` and README.md (with references to the official code).

Each pattern runs in its own process so that peak memory (GPU allocator peak, or peak RSS on CPU)
does not mix. The floor is the text tower's FLOPs of our step (see
:func:`benchmarks.common.text_tower_flops`) divided by the measured matmul rate of the step's dtype.

    python -m benchmarks.bench_step --device cpu --classes 100             # CPU, C = 100
    python -m benchmarks.bench_step --device cuda --classes 1000           # GPU, C = 1000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks import baselines
from benchmarks.common import (
    REPO,
    environment,
    imagenet_names,
    load_vit,
    matmul_rate,
    peak_memory,
    reset_peak,
    setup,
    sync,
    text_shape,
    text_tower_flops,
    timeit,
    write_json,
)

BATCH = 64
PATTERNS = ("ours", *baselines.PATTERNS)


def common_setup(
    device: torch.device, classes: int, n_neg: int, batch: int = BATCH, backbone=None, compile_mode=None
) -> dict:
    """The pieces every pattern shares: ViT-B-16 (random weights), contexts, class names, SGD, labels."""
    from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder
    from negprompt.train.config import TrainConfig

    backbone = backbone or load_vit(device)
    encoder = TextEncoder(backbone)
    encoder.compile = compile_mode
    learner = PromptLearner(encoder, PromptConfig(n_neg=n_neg))
    learner.pos_ctx.requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    return {
        "backbone": backbone,
        "encoder": encoder,
        "learner": learner,
        "classes": learner.class_names(imagenet_names(classes)),
        "n_classes": classes,
        "n_neg": n_neg,
        "batch": batch,
        "device": device,
        "optimizer": torch.optim.SGD([learner.neg_ctx], lr=0.1),
        "config": TrainConfig(stage=2, batch_size=batch, amp="auto"),
        "logit_scale": float(backbone.model.logit_scale),
        "gen": gen,
        "labels": torch.randint(classes, (batch,), generator=gen).to(device),
    }


def prefix_groups(classes, n_neg: int, n_ctx: int, bucket: int) -> list[tuple[int, ...]]:
    """FLOP groups of the shared-prefix encoding of the C × M negatives: the M prefixes of
    ``1 + L`` tokens (no read-out), then the suffixes (name + EOT, rounded up to ``bucket``)
    grouped by length, each attending to ``1 + L + S`` keys."""
    t0 = 1 + n_ctx
    span = ((classes.lengths + 1 + bucket - 1) // bucket) * bucket
    span = span.clamp(max=classes.suffix.shape[1])
    groups: list[tuple[int, ...]] = [(n_neg, t0, t0, 0)]
    groups += [(n_neg * int((span == s).sum()), int(s), t0 + int(s)) for s in span.unique()]
    return groups


def build(pattern: str, device: torch.device, classes: int, n_neg: int, backbone=None, compile_mode=None):
    """Everything one step needs; returns ``(step, extra)`` where ``step()`` runs one training step.

    ``compile_mode``: ours only, ``torch.compile`` mode of the suffix pass (see negprompt.prefix).
    """
    from negprompt.train.step import train_step

    s = common_setup(device, classes, n_neg, backbone=backbone, compile_mode=compile_mode)
    shape = text_shape(s["backbone"])
    if pattern != "ours":
        step, extra = baselines.build(pattern, s, lambda: sync(device))
        return step, {**extra, "text_flops": text_tower_flops(extra["text_groups"], backward=True, **shape)}
    learner, cls, config, gen = s["learner"], s["classes"], s["config"], s["gen"]
    dim = s["backbone"].embed_dim
    pool = torch.nn.functional.normalize(torch.randn(16 * BATCH, dim, generator=gen), dim=-1).to(device)
    dtype = config.amp_dtype(device)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with torch.no_grad(), autocast:
        pos_text = learner.positive_features(cls).float()  # once, before training
    rows_all = torch.randint(len(pool), (64, BATCH), generator=gen).to(device)
    calls = [0]

    def step():
        rows = rows_all[calls[0] % len(rows_all)]
        calls[0] += 1
        return train_step(
            learner, cls, pool[rows], s["labels"], config, logit_scale, s["optimizer"], pos_text=pos_text
        )

    logit_scale = s["logit_scale"]
    bucket = learner.encoder.bucket or (4 if device.type == "cuda" else 1)
    groups = prefix_groups(cls, n_neg, learner.config.n_ctx, bucket)
    return step, {"text_groups": groups, "text_flops": text_tower_flops(groups, backward=True, **shape)}


def run_pattern(
    pattern: str, device: torch.device, classes: int, n_neg: int, warmup: int, repeats: int
) -> dict:
    """Time one pattern in this process: median step time, peak memory, FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    step, extra = build(pattern, device, classes, n_neg)
    image_times = extra.pop("image_times", None)
    memory = reset_peak(device)
    result = {"pattern": pattern, "classes": classes, "n_neg": n_neg, "batch": BATCH, **extra}
    try:
        if pattern == "ours":  # one extra step with PyTorch's FLOP counter
            with FlopCounterMode(display=False) as counter:
                step()
            result["counted_flops"] = counter.get_total_flops()
        result.update(timeit(step, device, warmup, repeats))
        if image_times is not None:  # the image encoder's share of the timed steps
            result["image_part_s"] = statistics.median(image_times[-repeats:])
    except torch.cuda.OutOfMemoryError as exc:
        return {**result, "oom": str(exc).splitlines()[0]}
    result["memory"] = {**memory, **peak_memory(device)}
    return result


def _subprocess(args, pattern: str, classes: int, warmup: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "benchmarks.bench_step", "--pattern", pattern, "--device", args.device]
        cmd += ["--classes", str(classes), "--n-neg", str(args.n_neg), "--threads", str(args.threads)]
        cmd += ["--warmup", str(warmup), "--repeats", str(repeats), "--json-out", str(out)]
        print(
            f"[bench_step] {pattern}, C={classes}: {warmup} warm-up + {repeats} timed steps", file=sys.stderr
        )
        subprocess.run(cmd, cwd=REPO, check=True)
        return json.loads(out.read_text())


def measure_baseline(args, pattern: str) -> dict:
    """One baseline in its own process; if it runs out of GPU memory, at C/2, C/4, … and extrapolated
    linearly in C for its text part (the image part does not depend on C)."""
    classes = args.classes
    while True:
        result = _subprocess(args, pattern, classes, args.orig_warmup, args.orig_repeats)
        if "oom" not in result or classes == 1:
            break
        print(f"[bench_step] {pattern} out of memory at C={classes}", file=sys.stderr)
        classes //= 2
    if classes != args.classes and "median_s" in result:
        img = result["image_part_s"]
        result["extrapolated_median_s"] = img + (args.classes / classes) * (result["median_s"] - img)
        result["text_flops"] *= args.classes / classes
    return result


def speedups(base: dict, ours: dict, same_c: bool) -> dict:
    """Ratios of a baseline's step time to ours: medians, fastest steps, process CPU time."""
    base_time = base.get("extrapolated_median_s", base.get("median_s"))
    return {
        "speedup": base_time / ours["median_s"] if base_time else None,
        "speedup_min": base["min_s"] / ours["min_s"] if "min_s" in base and same_c else None,
        "speedup_cpu_time": base["cpu_s"] / ours["cpu_s"] if "cpu_s" in base and same_c else None,
    }


def side_by_side(args) -> dict:
    """Ours and each baseline on the same device (one process each), the ratios and the floor.

    The headline ``speedup`` is against ``faithful`` (the authors' stage-3 step) when it is among
    ``args.baselines``, else against the first baseline.
    """
    ours = _subprocess(args, "ours", args.classes, args.warmup, args.repeats)
    results = {name: measure_baseline(args, name) for name in args.baselines}
    device = setup(args.device, args.threads if args.device == "cpu" else None)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rate = matmul_rate(device, dtype)
    fp32_rate = rate if dtype == torch.float32 else matmul_rate(device, torch.float32)
    floor = ours["text_flops"] / rate
    ratios = {name: speedups(r, ours, "extrapolated_median_s" not in r) for name, r in results.items()}
    head = "faithful" if "faithful" in results else args.baselines[0]
    return {
        "environment": environment(device),
        "ours": ours,
        **results,
        "headline_baseline": head,
        **ratios[head],
        "speedups": ratios,
        "matmul": {"dtype": str(dtype), "tflop_per_s": rate / 1e12, "fp32_tflop_per_s": fp32_rate / 1e12},
        "floor": {
            "text_gflop": ours["text_flops"] / 1e9,
            "floor_s": floor,
            "achieved_fraction": floor / ours["median_s"],
            "achieved_fraction_min": floor / ours["min_s"],
            "baseline_text_floor_s_fp32": {n: r["text_flops"] / fp32_rate for n, r in results.items()},
        },
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options, with the per-device defaults filled in."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (ignored on CUDA)")
    parser.add_argument("--classes", type=int, default=None, help="default: 100 on CPU, 1000 on CUDA")
    parser.add_argument("--n-neg", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=None, help="ours (default: 1 CPU, 3 CUDA)")
    parser.add_argument("--repeats", type=int, default=None, help="ours (default: 10 CPU, 20 CUDA)")
    parser.add_argument("--orig-warmup", type=int, default=1, help="each baseline")
    parser.add_argument("--orig-repeats", type=int, default=None, help="baselines (default: 2 CPU, 5 CUDA)")
    parser.add_argument(
        "--baselines",
        default="faithful",
        help=f"comma-separated baselines to compare with, from {list(baselines.PATTERNS)}",
    )
    parser.add_argument("--pattern", choices=["both", *PATTERNS], default="both")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    unknown = [b for b in args.baselines if b not in baselines.PATTERNS]
    if unknown or not args.baselines:
        parser.error(f"--baselines {unknown or '(empty)'}: choose from {list(baselines.PATTERNS)}")
    cuda = args.device.startswith("cuda")
    args.classes = args.classes or (1000 if cuda else 100)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    args.repeats = args.repeats or (20 if cuda else 10)
    args.orig_repeats = args.orig_repeats or (5 if cuda else 2)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    cuda = args.device.startswith("cuda")
    if args.pattern == "both":
        result = side_by_side(args)
    else:
        device = setup(args.device, args.threads if not cuda else None)
        result = run_pattern(args.pattern, device, args.classes, args.n_neg, args.warmup, args.repeats)
    if args.json_out:
        write_json(args.json_out, result)
    else:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
