"""Cost of CSP, AdaNeg and TANL at ImageNet scale on synthetic features: time and peak memory.

The features are built so that the methods do their full work: each ID image lies near one of the
C class features and each OOD image near one of the M negative labels (cos ≈ 0.5), so nearly every
image passes AdaNeg's thresholds and enters a memory (the slow path). No model is loaded except for
the optional ensemble-encoding rate (``--encode-words``: ViT-B-16 with random weights).

python -m benchmarks.bench_adaptive --device cpu --images 50000 --classes 1000 --n-neg 10000
python -m benchmarks.bench_adaptive --tanl --images 50000 --classes 1000 --bank 78403

TANL (``--tanl``, timed on its own) reads the whole label bank for every image: its stream has the
same make-up with the negatives drawn from the bank, and 15 noise features start its OOD queue.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from benchmarks.common import environment, setup


def _unit(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(*shape, generator=gen), dim=-1)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def synthetic_stream(gen: torch.Generator, images: int, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """[N, D]: 60% near a random ID class, 40% near a random negative label, shuffled."""
    n_id = int(0.6 * images)
    anchors = torch.cat(
        [
            pos[torch.randint(len(pos), (n_id,), generator=gen)],
            neg[torch.randint(len(neg), (images - n_id,), generator=gen)],
        ]
    )
    feats = torch.nn.functional.normalize(anchors + 1.7 * _unit(gen, images, pos.shape[1]), dim=-1)
    return feats[torch.randperm(images, generator=gen)]


def run(
    images: int = 50_000,
    classes: int = 1000,
    n_neg: int = 10_000,
    dim: int = 512,
    csp_nouns: int = 95_808,
    csp_adjectives: int = 17_825,
    csp_groups: int = 100,
) -> dict:
    """AdaNeg over one stream (official ImageNet settings) and CSP's mining and grouped score."""
    from negprompt.adaneg import AdaNegConfig, adaneg_scores
    from negprompt.csp import csp_negatives
    from negprompt.neglabel import group_order, neglabel_score

    gen = torch.Generator().manual_seed(0)
    pos, neg = _unit(gen, classes, dim), _unit(gen, n_neg, dim)
    feats = synthetic_stream(gen, images, pos, neg)
    out: dict = {"images": images, "classes": classes, "n_neg": n_neg, "dim": dim}
    out["inputs_peak_rss_mb"] = _peak_mb()

    config = AdaNegConfig()
    perm = group_order(n_neg - n_neg % config.groups, config.groups, 0)
    start = time.perf_counter()
    scores, _ = adaneg_scores(feats, pos, neg, config, group_perm=perm)
    out["adaneg"] = {
        "config": config.to_dict(),
        "seconds": time.perf_counter() - start,
        "images_per_s": images / (time.perf_counter() - start),
        "peak_rss_mb": _peak_mb(),
        "memory_tensor_mb": (classes + n_neg) * (config.memory + 1) * dim * 4 / 2**20,
        "mean_score": float(scores.mean()),
    }

    nouns, adjs = _unit(gen, csp_nouns, dim), _unit(gen, csp_adjectives, dim)
    start = time.perf_counter()
    order = csp_negatives(nouns, adjs, pos, fraction=0.15, groups=csp_groups, seed=0)
    mining = time.perf_counter() - start
    bank = torch.cat([nouns, adjs])[order]
    start = time.perf_counter()
    for i in range(0, images, 4096):
        f = feats[i : i + 4096]
        neglabel_score(f @ pos.T, f @ bank.T, csp_groups)
    scoring = time.perf_counter() - start
    out["csp"] = {
        "candidates": csp_nouns + csp_adjectives,
        "negatives": len(order),
        "mining_seconds": mining,
        "score_seconds": scoring,
        "score_images_per_s": images / scoring,
        "bank_mb_fp16": (csp_nouns + csp_adjectives) * dim * 2 / 2**20,
        "peak_rss_mb": _peak_mb(),
    }
    return out


def run_tanl(images: int = 50_000, classes: int = 1000, bank_size: int = 78_403, dim: int = 512) -> dict:
    """TANL over one stream (official ImageNet settings: β = 1000, L = 300, γ = 1, batches of 256)."""
    from negprompt.tanl import TANLConfig, tanl_scores

    gen = torch.Generator().manual_seed(0)
    pos, bank, noise = _unit(gen, classes, dim), _unit(gen, bank_size, dim), _unit(gen, 15, dim)
    feats = synthetic_stream(gen, images, pos, bank)
    out: dict = {"images": images, "classes": classes, "bank": bank_size, "dim": dim}
    out["inputs_peak_rss_mb"] = _peak_mb()
    config = TANLConfig()
    start = time.perf_counter()
    scores, _ = tanl_scores(feats, pos, bank, noise, config)
    seconds = time.perf_counter() - start
    out["tanl"] = {
        "config": config.to_dict(),
        "seconds": seconds,
        "images_per_s": images / seconds,
        "peak_rss_mb": _peak_mb(),
        "queues_mb": 2 * config.memory * bank_size * 4 / 2**20,
        "batch_logits_mb": config.batch_size * (classes + bank_size) * 4 / 2**20,
        "mean_score": float(scores.mean()),
    }
    return out


def encode_rate(device: torch.device, words: int, backbone=None) -> dict:
    """Sentences/s of `negprompt.csp.encode_ensemble` (8 noun prompts per word) on ViT-B-16."""
    from benchmarks.common import load_vit
    from negprompt.csp import NOUN_TEMPLATES, encode_ensemble

    vit = backbone or load_vit(device)
    names = [f"word{i}" for i in range(words)]
    start = time.perf_counter()
    encode_ensemble(vit, names, NOUN_TEMPLATES, cache_dir=None, batch_size=256, progress=False)
    seconds = time.perf_counter() - start
    return {"words": words, "sentences": words * len(NOUN_TEMPLATES), "seconds": seconds,
            "sentences_per_s": words * len(NOUN_TEMPLATES) / seconds}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--n-neg", type=int, default=10_000)
    parser.add_argument("--tanl", action="store_true", help="time TANL only (over --bank candidate labels)")
    parser.add_argument("--bank", type=int, default=78_403, help="TANL's candidate labels")
    parser.add_argument("--encode-words", type=int, default=0, help="also time CSP's ensemble encoding")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads)
    if args.tanl:
        result = {"environment": environment(device), **run_tanl(args.images, args.classes, args.bank)}
    else:
        result = {"environment": environment(device), **run(args.images, args.classes, args.n_neg)}
    if args.encode_words:
        result["csp_encoding"] = encode_rate(device, args.encode_words)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
