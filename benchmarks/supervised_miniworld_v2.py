"""What v2's image tower can learn of the ID concepts when it is taught them directly, per artist.

    python -m benchmarks.supervised_miniworld_v2 [--json benchmarks/results-miniworld-v2-supervised.json]

The shipped ``negprompt-mini2`` misses its ID target mostly on Symbola's outlines, and a linear probe on
its features (``benchmarks.probe_miniworld_v2``) does not separate them even on pictures it trained on.
Is that the architecture at 32 px, or the contrastive pretraining's budget? Each setting here trains
``negprompt-mini2``'s image tower from scratch (random weights, seed 0) with a linear head and
cross-entropy over the 152 ID concepts, on ``--per-pair`` ``pretrain`` pictures of one artist's
drawings, and reports top-1 on those pictures and on ``val`` pictures of the same drawings (4 per
drawing), at a few checkpoints. Settings: an artist, an input size (the ViT's patch stays 4 px, so 48 px
has 2.25x the tokens), and the pictures per drawing.

A supervised tower is taught exactly the 152 labels; the contrastive pretraining spreads the same steps
over 1,870 concepts, three artists and v1's domains. So the numbers are what this tower and these
pictures allow, for comparison; not what a CLIP pretraining of the same length would reach. The
``test`` part is never read.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, write_json

SETTINGS = (
    {"artist": "symbola", "size": 32, "per_pair": 8},
    {"artist": "symbola", "size": 32, "per_pair": 32},
    {"artist": "symbola", "size": 48, "per_pair": 8},
    {"artist": "noto", "size": 32, "per_pair": 8},
)
"""What is compared: the outlines at the shipped input size and pictures per drawing, with 4x the
pictures, at 48 px, and the colour drawings for reference."""


def train_one(concepts: list, hierarchy, artist: str, size: int, per_pair: int, steps: int, batch: int,
              val_per_pair: int = 4, lr: float = 1e-3, checkpoints: int = 4) -> dict:  # fmt: skip
    """Train the tower + head on one setting; top-1 on its pictures and on ``val`` at ``checkpoints``
    evenly spaced steps (the last is the end of the cosine schedule)."""
    import open_clip
    import torch
    import torch.nn.functional as F
    from open_clip.model import _build_vision_tower

    from negprompt.miniworld import world_v2 as W
    from negprompt.miniworld.pretrain import MEAN, STD

    pairs = W.drawn_pairs(concepts, [artist])
    t0 = time.perf_counter()
    seen = W.pictures("seen", pairs, per_pair, "pretrain", hierarchy, None, size=size)
    new = W.pictures("new", pairs, val_per_pair, "val", hierarchy, None, size=size)
    render_s = time.perf_counter() - t0

    def tensor(images: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255 - MEAN) / STD

    x_seen, y_seen = tensor(seen.images), torch.from_numpy(seen.labels)
    x_new, y_new = tensor(new.images), torch.from_numpy(new.labels)
    cfg = dict(open_clip.get_model_config("negprompt-mini2")["vision_cfg"], image_size=size)
    torch.manual_seed(0)
    tower = _build_vision_tower(open_clip.get_model_config("negprompt-mini2")["embed_dim"], cfg)
    head = torch.nn.Linear(tower.output_dim, len(seen.class_names))
    params = [*tower.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    gen = np.random.default_rng(0)

    @torch.no_grad()
    def top1(x: torch.Tensor, y: torch.Tensor) -> float:
        tower.eval()
        pred = torch.cat([head(tower(x[i : i + 512])).argmax(1) for i in range(0, len(x), 512)])
        tower.train()
        return round(float((pred == y).float().mean()), 4)

    marks = {round(steps * (k + 1) / checkpoints) for k in range(checkpoints)}
    curve, t1 = [], time.perf_counter()
    for step in range(steps):
        warm = min(1.0, (step + 1) / 100)
        for g in opt.param_groups:
            g["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * step / steps))
        rows = torch.from_numpy(gen.integers(0, len(x_seen), batch))
        dx, dy = (int(v) for v in gen.integers(-2, 3, 2))  # the pretraining's shift of up to 2 px
        x = torch.roll(x_seen[rows], (dx, dy), (2, 3))
        loss = F.cross_entropy(head(tower(x)), y_seen[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step + 1 in marks:
            curve.append({"step": step + 1, "loss": round(loss.item(), 4), "pretrain": top1(x_seen, y_seen),
                          "val": top1(x_new, y_new)})  # fmt: skip
    return {
        "artist": artist,
        "size": size,
        "per_pair": per_pair,
        "classes": len(seen.class_names),
        "pictures": {"pretrain": len(seen), "val": len(new)},
        "steps": steps,
        "batch": batch,
        "curve": curve,
        "render_s": round(render_s, 1),
        "train_s": round(time.perf_counter() - t1, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="steps per setting (1000)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--limit", type=int, default=None, help="only the first N ID concepts (a quick check)")
    ap.add_argument("--only", type=int, nargs="*", default=None, help="indices into SETTINGS (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results-miniworld-v2-supervised.json")
    args = ap.parse_args(argv)
    import torch

    import negprompt.backbone  # noqa: F401  (registers the mini configs with open_clip)
    from negprompt.miniworld import splits
    from negprompt.miniworld.emoji import load_hierarchy

    torch.set_num_threads(args.threads)
    split = splits.published()
    hierarchy = load_hierarchy()
    concepts = [hierarchy.by_name[n] for n in split["id"][: args.limit]]
    chosen = [SETTINGS[i] for i in (range(len(SETTINGS)) if args.only is None else args.only)]
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads",
        "model": "negprompt-mini2's image tower (random init, seed 0) + a linear head, cross-entropy",
        "optimizer": "AdamW(lr=1e-3, weight_decay=0.05), 100 warm-up steps, cosine",
        "settings": [],
    }
    for s in chosen:
        r = train_one(concepts, hierarchy, s["artist"], s["size"], s["per_pair"], args.steps, args.batch)
        result["settings"].append(r)
        write_json(args.json, result)  # after each setting: a stopped run keeps what it measured
        last = r["curve"][-1]
        print(
            f"{s}: pretrain {last['pretrain']:.1%}, val {last['val']:.1%} ({r['train_s']:.0f} s)", flush=True
        )
    return result


if __name__ == "__main__":
    main()
