"""v2 pretraining's speed on this machine: drawing the pool in one process and in several, and a
training step in fp32 and in bf16.

    python -m benchmarks.bench_pretrain_v2 [--device cpu] [--json benchmarks/results-miniworld-v2-pretrain-speed.json]

The pool is v2's pretraining pictures (``per_pair`` 8 per drawing, without v1's domains, which are
drawn in one process either way). It is drawn twice, with one worker and with one per core, and the
two must be the same to the byte. A step is timed by ``negprompt.miniworld.pretrain.seconds_per_step``
(two untimed steps, then ``--steps`` timed ones, of a throwaway model) with v2's recipe, at each
precision: what ``--seconds`` divides a time budget by.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, write_json


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per precision (10)")
    ap.add_argument("--per-pair", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--limit", type=int, default=None, help="only the first N drawings (a quick check)")
    ap.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results-miniworld-v2-pretrain-speed.json"
    )
    args = ap.parse_args(argv)
    import torch

    from negprompt.miniworld import pretrain as P
    from negprompt.miniworld import pretrain_v2 as P2
    from negprompt.miniworld import splits
    from negprompt.miniworld import world_v2 as W
    from negprompt.miniworld.emoji import load_hierarchy
    from negprompt.miniworld.lexicon import WordNet

    torch.set_num_threads(args.threads)
    hierarchy, lexicon = load_hierarchy(), WordNet()
    pairs = W.pretraining_pairs(hierarchy, splits.published())[: args.limit]
    drawn = {}
    for workers in (1, W._default_workers()):
        t0 = time.perf_counter()
        domain = W.pictures(
            P2.EMOJI_DOMAIN, pairs, args.per_pair, "pretrain", hierarchy, lexicon, workers=workers
        )
        drawn[workers] = (time.perf_counter() - t0, domain)
    (one_s, one), (many_s, many) = drawn[1], drawn[max(drawn)]
    if not np.array_equal(one.images, many.images):
        raise SystemExit("the pictures drawn by several processes differ from those drawn by one")
    world = {P2.EMOJI_DOMAIN: many}
    cfg = P2.PretrainV2Config(batch_size=args.batch_size, v1_share=0.0, threads=args.threads)
    steps = {}
    for precision in ("fp32", "bf16"):
        run = dataclasses.replace(cfg, precision=precision)
        steps[precision] = P.seconds_per_step(
            world, run, device=args.device, domain_weights={P2.EMOJI_DOMAIN: 1.0}, steps=args.steps
        )
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "CPU"
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs; {args.device} ({name}), {args.threads} threads",
        "pictures": len(many),
        "draw_s": {"1 worker": round(one_s, 1), f"{max(drawn)} workers": round(many_s, 1)},
        "same_pictures": True,
        "model": cfg.model,
        "batch_size": cfg.batch_size,
        "seconds_per_step": {k: round(v, 4) for k, v in steps.items()},
        "bf16_speedup": round(steps["fp32"] / steps["bf16"], 2),
        "steps_in_an_hour": {k: P.steps_within(3600, v, cfg) for k, v in steps.items()},
    }
    write_json(args.json, result)
    print(result)
    return result


if __name__ == "__main__":
    main()
