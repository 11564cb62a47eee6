#!/usr/bin/env python
"""Compare pretraining recipes of mini-world v2 on its ``val`` part, at a short, equal number of steps.

    python scripts/compare_v2_recipes.py --out runs/v2-recipes.jsonl \
        --variant '{"name": "own-caption", "loss": "own-caption"}' \
        --variant '{"name": "text 128", "loss": "own-caption", "model": "negprompt-mini2"}' \
        --variant '{"name": "image 192", "model": "negprompt-mini2", "arch": {"vision_cfg.width": 192}}'

Every variant is a set of `negprompt.miniworld.pretrain_v2.PretrainV2Config` fields over the script's
base recipe (``--steps``, default 400; everything else v2's defaults), and optionally ``arch``: changes
to the model's open_clip config (``"<section>.<key>": value``), registered under a derived name. The
pretraining pool is rendered once and shared. Each variant's line in ``--out`` (JSON lines, appended)
holds zero-shot top-1 on ``val`` for each pretraining artist ("a photo of a <class>" and the artist's
style prompt), the wall time, the last loss and the logit scale. Only ``val`` is read: the test part
stays for the chosen recipe's card.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import open_clip
import open_clip.factory
import torch
import torch.nn.functional as F

from negprompt.miniworld import artists as A
from negprompt.miniworld import pretrain as P
from negprompt.miniworld import pretrain_v2 as P2
from negprompt.miniworld import splits
from negprompt.miniworld import world_v2 as W2
from negprompt.miniworld.emoji import load_hierarchy
from negprompt.miniworld.lexicon import WordNet
from negprompt.miniworld.wording import ZERO_SHOT_STYLE


def derived_model(base: str, arch: dict, name: str) -> str:
    """Register ``base``'s open_clip config with ``arch``'s changes as ``name``; returns ``name``."""
    cfg = copy.deepcopy(open_clip.get_model_config(base))
    for key, value in arch.items():
        section, field = key.split(".", 1)
        if field not in cfg.get(section, {}):
            raise SystemExit(f"{base} has no config entry {key!r}")
        cfg[section][field] = value
    open_clip.factory._MODEL_CONFIGS[name] = cfg
    return name


@torch.no_grad()
def val_top1(model: torch.nn.Module, sets: dict) -> dict[str, float]:
    """Top-1 per artist with the toolkit's prompt and with the artist's style prompt."""
    tokenizer = open_clip.get_tokenizer(P.MODEL)
    out = {}
    for artist, d in sets.items():
        x = torch.from_numpy(d.images).permute(0, 3, 1, 2).float().div_(255.0)
        f = F.normalize(model.encode_image((x - P.MEAN) / P.STD), dim=-1)
        for key, template in (
            ("photo", P.ZERO_SHOT_TEMPLATE),
            ("style", ZERO_SHOT_STYLE[A.ARTISTS[artist].style]),
        ):
            t = F.normalize(model.encode_text(tokenizer([template.format(n) for n in d.class_names])), dim=-1)
            out[f"{artist}/{key}"] = round(float(((f @ t.t()).argmax(1).numpy() == d.labels).mean()), 4)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON lines file (appended)")
    ap.add_argument("--variant", action="append", required=True, help="JSON: recipe fields (+ name, arch)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--val-per-pair", type=int, default=2)
    args = ap.parse_args(argv)
    variants = [json.loads(v) for v in args.variant]
    base = P2.PretrainV2Config(steps=args.steps)
    known = {f.name for f in dataclasses.fields(P2.PretrainV2Config)}
    for v in variants:
        unknown = set(v) - known - {"name", "arch"}
        if unknown:
            raise SystemExit(f"variant {v.get('name')!r}: unknown recipe fields {sorted(unknown)}")
    hierarchy, lexicon, split = load_hierarchy(), WordNet(), splits.published()
    t0 = time.perf_counter()
    world = P2.pretraining_world(base, hierarchy, split, lexicon, progress=False)
    print(f"pool rendered in {time.perf_counter() - t0:.0f} s", flush=True)
    seen = [a for a in A.ARTISTS if a != split["covariate_artist"]]
    by = hierarchy.by_name
    sets = {
        a: W2.pictures(
            a, W2.drawn_pairs([by[n] for n in split["id"]], [a]), args.val_per_pair, "val", hierarchy, lexicon
        )
        for a in seen
    }
    for k, v in enumerate(variants):
        fields = {f: x for f, x in v.items() if f in known}
        cfg = dataclasses.replace(base, **fields)
        if v.get("arch"):
            cfg = dataclasses.replace(
                cfg, model=derived_model(cfg.model, v["arch"], f"{cfg.model}-variant{k}")
            )
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            model, summary = P.pretrain(world, cfg, Path(tmp) / "state.pt", progress=False,
                                        domain_weights=P2.domain_weights(cfg.v1_share))  # fmt: skip
        row = {"name": v.get("name", str(fields)), "recipe": fields, "arch": v.get("arch", {}),
               "steps": cfg.steps, **val_top1(model, sets), "seconds": round(time.perf_counter() - t),
               "loss_last_50": summary["final_loss_mean_last_50"],
               "logit_scale": round(float(model.logit_scale.exp()), 1),
               "images_per_artist": {a: len(d) for a, d in sets.items()}}  # fmt: skip
        print(json.dumps(row), flush=True)
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
