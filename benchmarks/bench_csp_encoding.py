"""CSP's label-bank encoding: the plain full-length loop against the length-sorted, cut encoding.

A seeded sample of the real pool (shipped WordNet 3.0: nouns × 8 prompts, adjective phrases × 4, in
the pool's proportions) is encoded both ways with the same model; the rate of each is extrapolated
to the whole bank (`csp_pool`'s prompt count), and the largest difference between the two feature
sets is reported (they must agree to float rounding).

    python -m benchmarks.bench_csp_encoding --model negprompt-mini --sample 4000 --out benchmarks/results-csp-encoding-cpu.json
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from benchmarks.common import environment, setup, write_json


def sample_prompts(sample: int, seed: int = 0, wordnet_dir=None) -> tuple[list[str], int]:
    """``sample`` prompts drawn (seeded) from the whole CSP bank, and the bank's prompt count."""
    from negprompt.csp import ADJ_TEMPLATES, NOUN_TEMPLATES, csp_pool
    from negprompt.wordnet import load_synsets

    nouns, phrases = csp_pool(load_synsets("noun", wordnet_dir), load_synsets("adj", wordnet_dir), seed=seed)
    n_nouns, n_adj = len(nouns) * len(NOUN_TEMPLATES), len(phrases) * len(ADJ_TEMPLATES)
    total = n_nouns + n_adj
    rng = random.Random(seed)
    picks = sorted(rng.sample(range(total), min(sample, total)))
    prompts = []
    for i in picks:
        if i < n_nouns:
            prompts.append(NOUN_TEMPLATES[i % len(NOUN_TEMPLATES)].format(nouns[i // len(NOUN_TEMPLATES)]))
        else:
            j = i - n_nouns
            prompts.append(ADJ_TEMPLATES[j % len(ADJ_TEMPLATES)].format(phrases[j // len(ADJ_TEMPLATES)]))
    return prompts, total


def plain(backbone, prompts: list[str], batch_size: int) -> torch.Tensor:
    """The encoding CSP used before: ``encode_text`` on full-length (77-token) batches, in order."""
    chunks = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            tokens = backbone.tokenizer(prompts[i : i + batch_size]).to(backbone.device)
            chunks.append(backbone.model.encode_text(tokens).float().cpu())
    return torch.cat(chunks)


def run(backbone, prompts: list[str], total: int, batch_size: int = 1024) -> dict:
    """Seconds and prompts/s of both encodings on ``prompts``, extrapolated to ``total`` prompts."""
    from negprompt.csp import encode_sentences

    out: dict = {"sample": len(prompts), "bank_prompts": total, "batch_size": batch_size}
    feats = {}
    for name, fn in (
        ("plain", lambda: plain(backbone, prompts, batch_size)),
        ("cut", lambda: encode_sentences(backbone, prompts, batch_size=batch_size, progress=False)),
    ):
        start, cpu = time.perf_counter(), time.process_time()
        feats[name] = fn()
        seconds = time.perf_counter() - start
        out[name] = {
            "seconds": seconds,
            "cpu_s": time.process_time() - cpu,
            "prompts_per_s": len(prompts) / seconds,
            "bank_minutes": total / (len(prompts) / seconds) / 60,
        }
    out["speedup"] = out["plain"]["seconds"] / out["cut"]["seconds"]
    diff = (feats["cut"] - feats["plain"]).abs().max()
    out["max_abs_diff"] = float(diff)
    out["max_abs_value"] = float(feats["plain"].abs().max())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="negprompt-mini")
    parser.add_argument("--pretrained", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads)
    from negprompt.backbone import load_backbone

    backbone = load_backbone(args.model, args.pretrained, device=device)
    prompts, total = sample_prompts(args.sample)
    result = {
        "environment": environment(device),
        "model": args.model,
        **run(backbone, prompts, total, args.batch_size),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
