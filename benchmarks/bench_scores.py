"""Scoring throughput of ``negprompt.scores.score_all`` (every score at once) on random unit features.

python -m benchmarks.bench_scores --device cpu --images 20000 --classes 1000
"""

from __future__ import annotations

import argparse
import json

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=1000)
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads if args.device == "cpu" else None)
    print(
        json.dumps(
            {"environment": environment(device), "scores": run(device, args.images, args.classes)}, indent=1
        )
    )


if __name__ == "__main__":
    main()
