"""Prompt encoding with and without EOT truncation: modes ``full`` vs ``pad`` vs ``length``.

C ImageNet classes × (1+M) prompts (a positive and M negatives per class) through the ViT-B-16 text
tower (random weights): forward only (no_grad) and forward + backward to the contexts.

    python -m benchmarks.bench_text --device cpu --classes 100
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmarks.common import (
    environment,
    imagenet_names,
    load_vit,
    setup,
    text_shape,
    text_tower_flops,
    timeit,
)


def run(
    device: torch.device,
    classes: int = 100,
    n_neg: int = 2,
    warmup: int = 1,
    repeats: int = 3,
    full_warmup: int = 0,
    full_repeats: int = 1,
) -> list[dict]:
    """One row per (mode, pass): median time, prompts/s, the max deviation from ``full``."""
    from negprompt.prompts import ENCODE_MODES, PromptConfig, PromptLearner, TextEncoder

    backbone = load_vit(device)
    encoder = TextEncoder(backbone)
    learner = PromptLearner(encoder, PromptConfig(n_neg=n_neg))
    names = imagenet_names(classes)
    cls = learner.class_names(names)
    per = 1 + n_neg
    ctx_param = torch.cat([learner.pos_ctx.detach().unsqueeze(0), learner.neg_ctx.detach()]).requires_grad_(
        True
    )
    idx = torch.arange(classes).repeat_interleave(per)
    shape = text_shape(backbone)
    tokens = 1 + learner.config.n_ctx + cls.lengths[idx] + 1  # SOS, context, name, EOT

    def prompts():
        return ctx_param.unsqueeze(0).expand(classes, -1, -1, -1).reshape(classes * per, *ctx_param.shape[1:])

    rows, outputs = [], {}
    for mode in reversed(ENCODE_MODES):  # full first: the reference
        if mode == "full":
            groups = [(len(idx), encoder.context_length)]
        elif mode == "pad":
            groups = [(len(idx), int(tokens.max()))]
        else:
            groups = [(int((tokens == t).sum()), int(t)) for t in tokens.unique()]
        w, r = (full_warmup, full_repeats) if mode == "full" else (warmup, repeats)

        def forward(mode=mode):
            with torch.no_grad():
                outputs[mode] = encoder.encode(prompts(), cls, idx, mode)

        def forward_backward(mode=mode):
            ctx_param.grad = None
            out = encoder.encode(prompts(), cls, idx, mode)
            (out * torch.linspace(-1, 1, out.shape[-1], device=out.device)).sum().backward()

        for name, fn, bwd in (("forward", forward, False), ("forward+backward", forward_backward, True)):
            flops = text_tower_flops(groups, backward=bwd, **shape)
            try:
                res = timeit(fn, device, w, r)
            except torch.cuda.OutOfMemoryError:  # full length, forward+backward, many classes
                ctx_param.grad = None
                torch.cuda.empty_cache()
                nan = float("nan")
                res = {"oom": True, "median_s": nan, "min_s": nan, "cpu_s": nan, "times_s": [], "repeats": 0}
            rows.append(
                {
                    "mode": mode,
                    "pass": name,
                    "prompts": len(idx),
                    "tokens": sum(p * t for p, t in groups),
                    "groups": len(groups),
                    "gflop": flops / 1e9,
                    **res,
                    "prompts_per_s": len(idx) / res["median_s"],
                    "gflop_per_s": flops / 1e9 / res["median_s"],
                }
            )
    for row in rows:
        row["max_abs_diff_vs_full"] = (
            float((outputs[row["mode"]] - outputs["full"]).abs().max()) if "full" in outputs else float("nan")
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads if args.device == "cpu" else None)
    rows = run(device, args.classes, warmup=args.warmup, repeats=args.repeats)
    print(json.dumps({"environment": environment(device), "text": rows}, indent=1))


if __name__ == "__main__":
    main()
