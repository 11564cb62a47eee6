"""A stage-2 training step of negprompt vs the original implementation's compute pattern, side by side.

- ``ours``: cached image features (batch 64), positive prompts encoded once before training (not in
  the step), the negatives of all C classes × M encoded EOT-truncated and grouped by length, bf16
  autocast on CUDA (fp32 on CPU), L_img + L_pd + L_nn, backward to the negative contexts, SGD step:
  :func:`negprompt.train.step.train_step` as training runs it.
- ``original``: the image encoder runs every step on an augmented batch of 64 images (224 px, random
  crop with padding 4 and flip), and all C × (1+M) prompts, the positives included, are encoded at
  the full 77 tokens in fp32; same losses, backward, SGD step. Re-created from the same building
  blocks (``mode="full"``, ``backbone.encode_images`` in fp32).

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
import time
from pathlib import Path

import torch

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
)

BATCH = 64


def _augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The original augmentation on a pixel batch: zero padding 4, random 224 crop, random flip."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (n, 2), generator=gen).tolist()
    flips = torch.rand(n, generator=gen).lt(0.5).tolist()
    out = []
    for x, (dy, dx), flip in zip(padded, offsets, flips):
        crop = x[:, dy : dy + h, dx : dx + w]
        out.append(crop.flip(-1) if flip else crop)
    return torch.stack(out)


def build(pattern: str, device: torch.device, classes: int, n_neg: int):
    """Everything one step needs; returns ``(step, extra)`` where ``step()`` runs one training step."""
    from negprompt.losses import stage2_loss
    from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder
    from negprompt.train.config import TrainConfig
    from negprompt.train.step import train_step

    backbone = load_vit(device)
    encoder = TextEncoder(backbone)
    learner = PromptLearner(encoder, PromptConfig(n_neg=n_neg))
    learner.pos_ctx.requires_grad_(False)
    cls = learner.class_names(imagenet_names(classes))
    optimizer = torch.optim.SGD([learner.neg_ctx], lr=0.1)
    config = TrainConfig(stage=2, batch_size=BATCH, amp="auto")
    logit_scale = float(backbone.model.logit_scale)
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(classes, (BATCH,), generator=gen).to(device)
    shape = text_shape(backbone)
    n_ctx = learner.config.n_ctx

    if pattern == "ours":
        pool = torch.nn.functional.normalize(
            torch.randn(16 * BATCH, backbone.embed_dim, generator=gen), dim=-1
        )
        pool = pool.to(device)
        dtype = config.amp_dtype(device)
        autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with torch.no_grad(), autocast:
            pos_text = learner.positive_features(cls).float()  # once, before training

        def step():
            rows = torch.randint(len(pool), (BATCH,), generator=gen).to(device)
            return train_step(
                learner, cls, pool[rows], labels, config, logit_scale, optimizer, pos_text=pos_text
            )

        tokens = 1 + n_ctx + cls.lengths + 1
        groups = [(n_neg * int((tokens == t).sum()), int(t)) for t in tokens.unique()]
        return step, {"text_groups": groups, "text_flops": text_tower_flops(groups, backward=True, **shape)}

    size = backbone.image_size
    images = torch.randn(BATCH, 3, size, size, generator=gen).to(device)
    idx = torch.arange(classes).repeat_interleave(1 + n_neg)

    image_times: list[float] = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        feats = backbone.encode_images(_augment(images, gen))  # fp32, no gradient
        sync(device)
        image_times.append(time.perf_counter() - start)
        ctx = torch.cat([learner.pos_ctx.detach().unsqueeze(0), learner.neg_ctx])  # [1+M, L, W]
        ctx = ctx.unsqueeze(0).expand(classes, -1, -1, -1).reshape(len(idx), *ctx.shape[1:])
        text = encoder.encode(ctx, cls, idx, "full").view(classes, 1 + n_neg, -1)
        losses = stage2_loss(
            feats,
            text[:, 0],
            text[:, 1:],
            labels,
            logit_scale,
            w_img=config.w_img,
            w_pd=config.w_pd,
            w_nn=config.w_nn,
        )
        losses["total"].backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    groups = [(len(idx), encoder.context_length)]
    return step, {
        "text_groups": groups,
        "text_flops": text_tower_flops(groups, backward=True, **shape),
        "image_times": image_times,
    }


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


def side_by_side(args) -> dict:
    """Both patterns on the same device (one process each), the ratio and the floor."""
    ours = _subprocess(args, "ours", args.classes, args.warmup, args.repeats)
    original, classes = None, args.classes
    while True:  # the original pattern may not fit in GPU memory at C = 1000: halve C and extrapolate
        original = _subprocess(args, "original", classes, args.orig_warmup, args.orig_repeats)
        if "oom" not in original or classes == 1:
            break
        print(f"[bench_step] original pattern out of memory at C={classes}", file=sys.stderr)
        classes //= 2
    if classes != args.classes and "median_s" in original:
        img = original["image_part_s"]
        original["extrapolated_median_s"] = img + (args.classes / classes) * (original["median_s"] - img)
    device = setup(args.device, args.threads if args.device == "cpu" else None)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rate = matmul_rate(device, dtype)
    fp32_rate = rate if dtype == torch.float32 else matmul_rate(device, torch.float32)
    orig_time = original.get("extrapolated_median_s", original.get("median_s"))
    floor = ours["text_flops"] / rate
    return {
        "environment": environment(device),
        "ours": ours,
        "original": original,
        "speedup": orig_time / ours["median_s"] if orig_time else None,
        "speedup_min": original["min_s"] / ours["min_s"]
        if "min_s" in original and classes == args.classes
        else None,
        "speedup_cpu_time": original["cpu_s"] / ours["cpu_s"]
        if "cpu_s" in original and classes == args.classes
        else None,
        "matmul": {"dtype": str(dtype), "tflop_per_s": rate / 1e12, "fp32_tflop_per_s": fp32_rate / 1e12},
        "floor": {
            "text_gflop": ours["text_flops"] / 1e9,
            "floor_s": floor,
            "achieved_fraction": floor / ours["median_s"],
            "achieved_fraction_min": floor / ours["min_s"],
            "original_text_floor_s_fp32": original["text_flops"] * args.classes / classes / fp32_rate,
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
    parser.add_argument("--orig-warmup", type=int, default=1)
    parser.add_argument("--orig-repeats", type=int, default=None, help="original (default: 2 CPU, 5 CUDA)")
    parser.add_argument("--pattern", choices=["both", "ours", "original"], default="both")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
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
    text = json.dumps(result, indent=1)
    if args.json_out:
        args.json_out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
