#!/usr/bin/env python
"""Compare pretraining recipes of mini-world v2 on its ``val`` part, at a short, equal number of steps
or an equal time.

    python scripts/compare_v2_recipes.py --out runs/v2-recipes.jsonl \
        --variant '{"name": "own-caption", "loss": "own-caption"}' \
        --variant '{"name": "text 128", "loss": "own-caption", "model": "negprompt-mini2"}' \
        --variant '{"name": "image 192", "model": "negprompt-mini2", "arch": {"vision_cfg.width": 192}}' \
        --variant '{"name": "clip art", "clipart": true}'

Every variant is a set of `negprompt.miniworld.pretrain_v2.PretrainV2Config` fields over the script's
base recipe (``--steps``, default 400; everything else v2's defaults), and optionally ``arch``: changes
to the model's open_clip config (``"<section>.<key>": value``, any entry open_clip reads, such as
``"vision_cfg.patch_dropout": 0.5``), registered under a derived name. The
pretraining pool is rendered once for all variants that share it (the same pictures per drawing, the
same ``clipart`` setting and, with v1's domains, the same seed and sizes). Each variant's line in ``--out`` (JSON lines, appended)
holds zero-shot top-1 on ``val`` for each pretraining artist ("a photo of a <class>" and the artist's
style prompt), the wall time, the last loss and the logit scale. Only ``val`` is read: the test part
stays for the chosen recipe's card.

On a GPU machine (``--device cuda``), ``--seconds S`` gives each variant the steps that fit in S seconds
and ``--save DIR`` keeps each variant's weights and summary, to be brought back and measured here with
``scripts/pretrain_mini_clip.py --world v2 --evaluate-only`` (which needs the covariate artist's
download): one call compares several recipes, and the chosen one needs no second training run. The
same command run again skips the variants it finished and resumes the one it was training.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import open_clip
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


def pool_key(cfg: P2.PretrainV2Config) -> tuple:
    """What the rendered pool depends on: pictures per drawing, clip art or not, and v1's generated
    domains when used (the outlines' domain of their own is taken from it, ``P2.with_outline_domain``)."""
    v1 = (cfg.seed, cfg.n_shapes, cfg.n_textures) if cfg.v1_share > 0 else ()
    return (cfg.per_pair, cfg.clipart, *v1)


def finished(out: Path, save: Path) -> set[str]:
    """The saved variants a previous call of the same sweep finished: a line in ``out`` and a readable
    folder (an interrupted sweep, run again, resumes at the first unfinished variant)."""
    if not out.is_file():
        return set()
    done = set()
    for line in out.read_text(encoding="utf-8").splitlines():
        try:
            name = json.loads(line).get("saved")
        except (ValueError, AttributeError):
            continue
        if isinstance(name, str) and Path(name).name == name and (save / name / P2.SUMMARY_FILE).is_file():
            try:
                cfg, _, _ = P2.load_run(save / name)
            except ValueError:
                continue
            if P2.weights_file(save / name, cfg).is_file():
                done.add(name)
    return done


def same_recipe(saved: P2.PretrainV2Config, cfg: P2.PretrainV2Config, timed: bool) -> bool:
    """Whether a saved run is ``cfg``'s (its steps aside when they came from a time budget; the
    settings that do not change the result aside)."""
    free = {"save_every", "threads"} | ({"steps"} if timed else set())
    a, b = dataclasses.asdict(saved), dataclasses.asdict(cfg)
    return {k: v for k, v in a.items() if k not in free} == {k: v for k, v in b.items() if k not in free}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:60] or "variant"


@contextlib.contextmanager
def tempfile_dir(folder: Path | None):
    """``folder`` (made) when given, else a temporary folder: where a variant's checkpoint lives while
    it trains (a kept folder lets an interrupted comparison resume that variant)."""
    if folder is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON lines file (appended)")
    ap.add_argument("--variant", action="append", required=True, help="JSON: recipe fields (+ name, arch)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=None,
                    help="instead of --steps: each variant trains as many steps as fit in this many seconds "
                    "(its own speed, timed on a few throwaway steps first): a comparison at equal time")  # fmt: skip
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--save", type=Path, default=None,
                    help="keep each variant's fp16 weights and summary in SAVE/<k>-<name>/, which "
                    "scripts/pretrain_mini_clip.py --world v2 --evaluate-only --out <that folder> measures")  # fmt: skip
    ap.add_argument("--val-per-pair", type=int, default=2)
    args = ap.parse_args(argv)
    if args.seconds is not None and not args.seconds > 0:
        ap.error(f"--seconds must be positive, not {args.seconds}")
    variants = [json.loads(v) for v in args.variant]
    base = P2.PretrainV2Config(steps=args.steps)
    known = {f.name for f in dataclasses.fields(P2.PretrainV2Config)}
    for v in variants:
        unknown = set(v) - known - {"name", "arch"}
        if unknown:
            raise SystemExit(f"variant {v.get('name')!r}: unknown recipe fields {sorted(unknown)}")
        try:  # a share out of range stops here, before any pool is drawn
            P2.domain_weights(float(v.get("v1_share", base.v1_share)), float(v.get("outline_share", 0.0)))
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"variant {v.get('name')!r}: {exc}") from exc
        if v.get("covariate_artist"):  # another held-out artist changes the val sets themselves
            raise SystemExit(f"variant {v.get('name')!r}: every variant here is measured on the published "
                             "split's val sets; train another held-out artist with scripts/pretrain_mini_clip.py "
                             "--world v2 --covariate-artist NAME")  # fmt: skip
    hierarchy, lexicon, split = load_hierarchy(), WordNet(), splits.published()
    pools: dict[tuple, dict] = {}

    def pool_of(cfg: P2.PretrainV2Config) -> dict:
        """The pool ``cfg`` trains on, rendered once for every variant that shares it."""
        key = pool_key(cfg)
        if key not in pools:
            t0 = time.perf_counter()
            one_domain = dataclasses.replace(cfg, outline_share=0.0)
            pools[key] = P2.pretraining_world(one_domain, hierarchy, split, lexicon, progress=False)
            v1 = ", with v1's domains" if cfg.v1_share > 0 else ""
            clip = ", clip art" if cfg.clipart else ""
            print(
                f"pool of {cfg.per_pair} pictures per drawing{clip}{v1} rendered in "
                f"{time.perf_counter() - t0:.0f} s",
                flush=True,
            )
        return P2.with_outline_domain(pools[key], cfg.outline_share)

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
        arch = None
        if v.get("arch"):
            arch = {"base": cfg.model, "changes": v["arch"]}
            try:
                name = P2.derived_model(cfg.model, v["arch"], f"{cfg.model}-variant{k}")
            except ValueError as exc:
                raise SystemExit(f"variant {v.get('name')!r}: {exc}") from exc
            cfg = dataclasses.replace(cfg, model=name)
        name = v.get("name", str(fields))
        folder = args.save / f"{k}-{_slug(name)}" if args.save else None
        if folder is not None and folder.name in finished(args.out, args.save):
            if same_recipe(
                P2.load_run(folder)[0], cfg, timed=args.seconds is not None and "steps" not in fields
            ):
                print(f"{name}: finished in an earlier call ({folder}); kept as it is", flush=True)
                continue
            raise SystemExit(f"{folder} holds a finished run of another recipe under the name {name!r}; "
                             "rename the variant or use another --save folder")  # fmt: skip
        world, weights = pool_of(cfg), P2.domain_weights(cfg.v1_share, cfg.outline_share)
        t = time.perf_counter()
        with tempfile_dir(folder) as tmp:
            budget = {}
            if args.seconds is not None and "steps" not in fields:  # a variant's own steps win
                cfg, budget = P.fit_to_budget(args.seconds, world, cfg, Path(tmp) / "state.pt",
                                              device=args.device, domain_weights=weights)  # fmt: skip
            model, summary = P.pretrain(world, cfg, Path(tmp) / "state.pt", device=args.device, progress=False,
                                        domain_weights=weights)  # fmt: skip
        summary |= budget
        row = {"name": name, "recipe": fields, "arch": v.get("arch", {}), "steps": cfg.steps,
               **val_top1(model, sets), "seconds": round(time.perf_counter() - t),
               "loss_last_50": summary["final_loss_mean_last_50"],
               "logit_scale": round(model.logit_scale.exp().item(), 1),
               "images_per_artist": {a: len(d) for a, d in sets.items()}, "device": args.device} | budget  # fmt: skip
        if folder is not None:
            P2.save_run(folder, model, cfg, summary, arch)
            (folder / "state.pt").unlink(missing_ok=True)  # weights and summary are what travels
            row["saved"] = folder.name
        print(json.dumps(row), flush=True)
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
