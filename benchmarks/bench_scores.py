"""Scoring throughput of ``negprompt.scores.score_all`` (every score at once) on random unit features,
and ``score("negprompt", …)`` against plain torch doing the same math without validation or copies.

python -m benchmarks.bench_scores --device cpu --images 20000 --classes 1000
python -m benchmarks.bench_scores --device cpu --plain-images 50000 --classes 1000    # vs plain torch
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from benchmarks.common import environment, setup, timeit


def run(
    device: torch.device, images: int = 20000, classes: int = 1000, n_neg: int = 2, dim: int = 512
) -> dict:
    """Images/s and (image, prompt) pairs/s of all registered scores over C(1+M) prompts."""
    from negprompt.scores import score_all

    gen = torch.Generator().manual_seed(0)

    def unit(*shape):
        return torch.nn.functional.normalize(torch.randn(*shape, generator=gen), dim=-1).to(device)

    f, pos, neg = unit(images, dim), unit(classes, dim), unit(classes, n_neg, dim)
    res = timeit(lambda: score_all(None, f, pos, neg), device, warmup=1, repeats=3)
    pairs = images * classes * (1 + n_neg)
    return {
        "images": images,
        "prompts": classes * (1 + n_neg),
        "scores": len(score_all(None, f[:2], pos, neg)),
        **res,
        "images_per_s": images / res["median_s"],
        "pairs_per_s": pairs / res["median_s"],
    }


def vs_plain(
    device: torch.device,
    images: int = 50000,
    classes: int = 1000,
    n_neg: int = 2,
    dim: int = 512,
    repeats: int = 5,
) -> dict:
    """``score("negprompt", f, pos, neg)`` vs the bare formula in plain torch on the same tensors.

    Plain: one matmul against the C(1+M) text features laid out once (outside the timing), then
    ``exp(max_c s_c − logsumexp(all columns))`` (T = 1): no checks, no batching, no copies.
    ``overhead`` = median time of ``score`` / median time of plain (target ≤ 1.1); on a shared CPU
    ``overhead_cpu_time`` (process CPU time) is the steadier figure.
    """
    from negprompt.scores import score

    gen = torch.Generator().manual_seed(1)

    def unit(*shape):
        return torch.nn.functional.normalize(torch.randn(*shape, generator=gen), dim=-1).to(device)

    f, pos, neg = unit(images, dim), unit(classes, dim), unit(classes, n_neg, dim)
    text = torch.cat([pos, neg.reshape(-1, dim)])

    def plain():
        s = f @ text.T
        return torch.exp(s[:, :classes].amax(dim=1) - torch.logsumexp(s, dim=1))

    ours = score("negprompt", f, pos, neg)
    diff = float((ours - plain()).abs().max())
    # interleaved, so that a change of machine load hits both alike
    t_ours, t_plain, c_ours, c_plain = [], [], [], []
    for _ in range(repeats):
        r = timeit(plain, device, 0, 1)
        t_plain.append(r["median_s"])
        c_plain.append(r["cpu_s"])
        r = timeit(lambda: score("negprompt", f, pos, neg), device, 0, 1)
        t_ours.append(r["median_s"])
        c_ours.append(r["cpu_s"])
    med = statistics.median
    return {
        "overhead_cpu_time": med(c_ours) / med(c_plain),
        "images": images,
        "prompts": classes * (1 + n_neg),
        "score_s": med(t_ours),
        "plain_s": med(t_plain),
        "overhead": med(t_ours) / med(t_plain),
        "overhead_min": min(t_ours) / min(t_plain),
        "max_abs_diff": diff,
        "times_score_s": t_ours,
        "times_plain_s": t_plain,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--plain-images", type=int, default=0, help="also time score vs plain torch")
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads if args.device == "cpu" else None)
    out = {"environment": environment(device), "scores": run(device, args.images, args.classes)}
    if args.plain_images:
        out["vs_plain"] = vs_plain(device, args.plain_images, args.classes)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
