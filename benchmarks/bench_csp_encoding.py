"""CSP's label-bank encoding: the plain full-length loop, length-sorted cut batches, and shared
template prefixes with per-word suffixes (`negprompt.textbank`).

A seeded sample of the real pool's words (shipped WordNet 3.0: nouns with their 8 prompts, adjective
phrases with their 4, in the pool's proportions) is encoded three ways with the same model; each
rate is extrapolated to the whole bank (`csp_pool`'s prompt count), and the largest difference of
each fast encoding from the plain one is reported (they must agree to float rounding).

    python -m benchmarks.bench_csp_encoding --model negprompt-mini --sample 1000 --out benchmarks/results-csp-encoding-cpu.json
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from benchmarks.common import environment, setup, write_json


def sample_words(sample: int, seed: int = 0, wordnet_dir=None) -> tuple[list[str], list[str], int]:
    """``(nouns, phrases, bank prompts)``: ``sample`` words drawn (seeded) in the pool's proportions."""
    from negprompt.csp import ADJ_TEMPLATES, NOUN_TEMPLATES, csp_pool
    from negprompt.wordnet import load_synsets

    nouns, phrases = csp_pool(load_synsets("noun", wordnet_dir), load_synsets("adj", wordnet_dir), seed=seed)
    total = len(nouns) * len(NOUN_TEMPLATES) + len(phrases) * len(ADJ_TEMPLATES)
    rng = random.Random(seed)
    n_adj = round(sample * len(phrases) / (len(nouns) + len(phrases)))
    return sorted(rng.sample(nouns, sample - n_adj)), sorted(rng.sample(phrases, n_adj)), total


def check_tokens(tokenizer, wordnet_dir=None, seed: int = 0) -> dict:
    """Compare the joined tokens of the whole bank (`template_tokens`) with the tokenizer's, prompt by prompt."""
    from negprompt.csp import ADJ_TEMPLATES, NOUN_TEMPLATES, csp_pool
    from negprompt.textbank import template_tokens
    from negprompt.wordnet import load_synsets

    nouns, phrases = csp_pool(load_synsets("noun", wordnet_dir), load_synsets("adj", wordnet_dir), seed=seed)
    checked = differ = 0
    for words, templates in ((nouns, NOUN_TEMPLATES), (phrases, ADJ_TEMPLATES)):
        for i in range(0, len(words), 4096):
            part = words[i : i + 4096]
            joined = template_tokens(tokenizer, part, templates).long()
            whole = tokenizer([t.format(w) for w in part for t in templates])
            differ += int((joined != whole).any(dim=1).sum())
            checked += len(joined)
    return {"prompts": checked, "differ": differ}


def plain(backbone, prompts: list[str], batch_size: int) -> torch.Tensor:
    """The encoding CSP used first: ``encode_text`` on full-length (77-token) batches, in order."""
    chunks = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            tokens = backbone.tokenizer(prompts[i : i + batch_size]).to(backbone.device)
            chunks.append(backbone.model.encode_text(tokens).float().cpu())
    return torch.cat(chunks)


def run(backbone, nouns: list[str], phrases: list[str], total: int, batch_size: int = 1024) -> dict:
    """Seconds and prompts/s of the three encodings of the sample, extrapolated to ``total`` prompts."""
    from negprompt.csp import ADJ_TEMPLATES, NOUN_TEMPLATES
    from negprompt.textbank import encode_sentences, encode_template_bank

    groups = [(nouns, NOUN_TEMPLATES), (phrases, ADJ_TEMPLATES)]
    prompts = [t.format(w) for words, templates in groups for w in words for t in templates]

    def templated():
        return torch.cat([
            encode_template_bank(backbone, words, templates, batch_size=batch_size, progress=False).flatten(0, 1)
            for words, templates in groups if words
        ])  # fmt: skip

    out: dict = {"sample_words": len(nouns) + len(phrases), "sample": len(prompts), "bank_prompts": total,
                 "batch_size": batch_size}  # fmt: skip
    feats = {}
    tok = backbone.tokenizer
    cold = dict(
        getattr(tok, "cache", {})
    )  # the tokenizer's word cache, as loaded: every encoding starts cold
    for name, fn in (
        ("plain", lambda: plain(backbone, prompts, batch_size)),
        ("cut", lambda: encode_sentences(backbone, prompts, batch_size=batch_size, progress=False)),
        ("template", templated),
    ):
        if hasattr(tok, "cache"):
            tok.cache.clear()
            tok.cache.update(cold)
        start, cpu = time.perf_counter(), time.process_time()
        feats[name] = fn()
        seconds = time.perf_counter() - start
        out[name] = {
            "seconds": seconds,
            "cpu_s": time.process_time() - cpu,
            "prompts_per_s": len(prompts) / seconds,
            "bank_minutes": total / (len(prompts) / seconds) / 60,
        }
        if name != "plain":
            out[name]["speedup"] = out["plain"]["seconds"] / seconds
            out[name]["max_abs_diff"] = float((feats[name] - feats["plain"]).abs().max())
    out["max_abs_value"] = float(feats["plain"].abs().max())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="negprompt-mini")
    parser.add_argument("--pretrained", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample", type=int, default=1000, help="words (nouns and adjective phrases)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--check-tokens", action="store_true", help="also compare the whole bank's tokens")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads)
    from negprompt.backbone import load_backbone

    backbone = load_backbone(args.model, args.pretrained, device=device)
    nouns, phrases, total = sample_words(args.sample)
    result = {
        "environment": environment(device),
        "model": args.model,
        **run(backbone, nouns, phrases, total, args.batch_size),
    }
    if args.check_tokens:
        result["token_check"] = check_tokens(backbone.tokenizer)
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
