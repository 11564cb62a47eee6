#!/usr/bin/env python
"""Pretrain the bundled mini-CLIP (``negprompt-mini``) on the mini-world and write its weights and card.

    python scripts/pretrain_mini_clip.py --out runs/pretrain-mini            # ~30 min on 2 CPU cores
    python scripts/pretrain_mini_clip.py --out runs/pretrain-mini --device cuda
    python scripts/pretrain_mini_clip.py --out runs/pretrain-mini --install --force   # replace the shipped weights
    python scripts/pretrain_mini_clip.py --world v2 --out runs/pretrain-v2            # mini-world v2
    python scripts/pretrain_mini_clip.py --world v2 --out runs/pretrain-v2 --test     # + the test part, once
    python scripts/pretrain_mini_clip.py --world v2 --out runs/v2-clipart --clipart  # + Debian's clip art

The run is seeded and resumable: run the same command again after an interruption. ``--out`` receives
``state.pt`` (the resumable checkpoint), the fp16 weights (safetensors) and the card (JSON and
Markdown) with the recipe, data, licences, software versions and the zero-shot accuracies measured on
held-out data with the fp16 weights. ``--install`` copies weights and card into the package, which
refuses to replace the shipped ones without ``--force``.

``--world v2`` pretrains on mini-world v2 (prepare it first: ``negprompt data prepare miniworld-v2``)
and measures the recipe on the ``val`` part of v2 (the numbers to compare recipes by); ``--test``
adds the ``test`` part's numbers to the card, to be measured once for the chosen recipe and never
compared. ``--install`` (v2: with ``--test``) copies weights and card into the package.

``--seconds S`` instead of ``--steps`` trains for as many steps as fit in S seconds on this device
(timed on a few throwaway steps first; the card records the steps, so ``--steps`` repeats the run).

A machine that can train but lacks the evaluation's data (a GPU machine without the npm download)
runs ``--train-only``: the weights and ``pretrain-summary.json`` (recipe, steps, time, device); bring
both back into ``--out`` here and run ``--evaluate-only --test`` to measure them and write the card.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import platform
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import open_clip
import safetensors.torch
import torch

from negprompt import bundled
from negprompt.io import atomic_write
from negprompt.miniworld import pretrain as P
from negprompt.miniworld import pretrain_v2 as P2
from negprompt.miniworld import world as W
from negprompt.miniworld.sources import MiniWorldDataError

DATA_CARD = {
    "clothing": "Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; MIT licence, Copyright (c) 2017 Zalando SE): "
    "the 60,000 training images for pretraining; the 10,000 test images held out for evaluation",
    "digits": "scikit-learn's bundled handwritten digits (UCI optical recognition of handwritten digits, "
    "CC BY 4.0): 70% for pretraining, a seeded 30% held out",
    "shapes": "generated coloured shapes (6 colours x 5 shapes x filled/outlined x small/large on 4 "
    "backgrounds); 6 colour-shape pairs never drawn for pretraining",
    "textures": "7 generated patterns and crops of 3 photographs (brick, grass, gravel) from scikit-image's "
    "sample data (CC0); pretraining crops come from the top half of each photograph, evaluation crops "
    "from the bottom half",
}


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, weights, card)")
    ap.add_argument("--world", choices=("v1", "v2"), default="v1", help="which mini-world (default v1)")
    ap.add_argument("--test", action="store_true", help="v2: also measure the test part (once, for the card)")
    defaults = P2.PretrainV2Config()
    for f in fields(P2.PretrainV2Config):  # unset ones take the chosen world's default (`recipe`)
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(getattr(defaults, f.name), bool):  # off by default: the flag turns it on
            ap.add_argument(flag, action="store_true", default=argparse.SUPPRESS)
            continue
        ap.add_argument(flag, type=type(getattr(defaults, f.name)) if f.name != "threads" else int,
                        default=argparse.SUPPRESS)  # fmt: skip
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--stop-after", type=int, default=None, help="stop after this step (resume later)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="instead of --steps: as many steps as fit in this many seconds of training on this "
                    "device, measured on a few throwaway steps before the run and recorded in the card")  # fmt: skip
    ap.add_argument("--install", action="store_true", help="copy the weights and card into the package")
    ap.add_argument("--force", action="store_true", help="with --install: replace the shipped weights")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--train-only", action="store_true",
                    help="v2: stop after writing the weights and pretrain-summary.json (a machine without the "
                    "evaluation's data); finish here with --evaluate-only")  # fmt: skip
    ap.add_argument("--evaluate-only", action="store_true",
                    help="v2: measure and write the card of the weights and pretrain-summary.json in --out, "
                    "with their recorded recipe; no training")  # fmt: skip
    args = ap.parse_args(argv)
    if args.seconds is not None:
        if "steps" in vars(args):
            ap.error("give --steps or --seconds, not both")
        if not args.seconds > 0:
            ap.error(f"--seconds must be positive, not {args.seconds}")
        if args.evaluate_only:
            ap.error("--seconds sets a training run's length; --evaluate-only trains nothing")
    return args


def recipe(args: argparse.Namespace, config: type) -> P.PretrainConfig:
    """The recipe of ``config`` (v1's or v2's dataclass): its defaults with the options given."""
    given = {f.name: getattr(args, f.name) for f in fields(P2.PretrainV2Config) if hasattr(args, f.name)}
    own = {f.name for f in fields(config)}
    foreign = sorted(set(given) - own)
    if foreign:
        raise SystemExit(
            f"error: {', '.join('--' + n.replace('_', '-') for n in foreign)} only apply to --world v2"
        )
    return config(**given)


def fit_budget(
    args: argparse.Namespace, cfg: P.PretrainConfig, world: dict, domain_weights: dict | None
) -> tuple[P.PretrainConfig, dict]:
    """``cfg`` with the steps that fit in ``--seconds`` (unchanged without it), and what to record."""
    if args.seconds is None:
        return cfg, {}
    cfg, record = P.fit_to_budget(args.seconds, world, cfg, args.out / "state.pt", device=args.device,
                                  domain_weights=domain_weights)  # fmt: skip
    if "probe_seconds_per_step" in record:
        print(f"{cfg.steps} steps fit in {args.seconds:.0f} s at {record['probe_seconds_per_step']:.3f} s "
              f"per step on {args.device}")  # fmt: skip
    return cfg, record


def card(cfg: P.PretrainConfig, summary: dict, accuracies: dict, weights: Path, device: str) -> dict:
    """The weights' card as a JSON-ready dict."""
    return {
        "model": P.MODEL,
        "tag": bundled.MINI_TAG,
        "weights_file": weights.name,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "bytes": weights.stat().st_size,
        "precision": "fp16 storage (loaded into fp32)",
        "recipe": asdict(cfg)
        | {
            "optimizer": "AdamW(betas=(0.9, 0.98), eps=1e-6)",
            "schedule": "linear warm-up, cosine",
            "loss": "symmetric contrastive loss, every true caption-image pair positive",
            "domain_weights": W.DOMAIN_WEIGHTS,
        },  # fmt: skip
        "trained_on": {"device": device, "device_name": _device_name(device)} | summary,
        "data": DATA_CARD,
        "zero_shot_top1": accuracies,
        "zero_shot_prompt": P.ZERO_SHOT_TEMPLATE,
        "software": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "open_clip": open_clip.__version__,
            "numpy": np.__version__,
        },
        "date": time.strftime("%Y-%m-%d"),
    }


def peak_words(trained_on: dict) -> str:
    """ ", peak memory …" for a card's training line, from what the run recorded (nothing for older runs)."""
    rss, cuda = trained_on.get("peak_rss_mb_this_process"), trained_on.get("peak_cuda_mb_this_process")
    words = ([f"{rss / 1024:.1f} GB resident"] if rss else []) + (
        [f"{cuda / 1024:.1f} GB on the GPU"] if cuda else []
    )
    return f", peak memory {' and '.join(words)}" if words else ""


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def markdown(c: dict) -> str:
    """The card as Markdown."""
    acc = "\n".join(
        f"| {k} | {v['classes']} | {v['images']} | {100 * v['top1']:.1f}% |"
        for k, v in c["zero_shot_top1"].items()
    )
    recipe = "\n".join(f"- `{k}`: {v}" for k, v in c["recipe"].items())
    data = "\n".join(f"- **{k}**: {v}" for k, v in c["data"].items())
    t = c["trained_on"]
    prompt = c["zero_shot_prompt"].format("<class>")
    if t.get("seconds_this_process") is None or t.get("final_loss_mean_last_50") is None:
        timing = (
            f"{t['steps_done']} steps; wall time and final loss not recorded ({t.get('note', 'no note')})."
        )
    else:
        timing = (
            f"{t['steps_done']} steps, {t['seconds_this_process']:.0f} s in the last process{peak_words(t)}, "
            f"final loss (mean of the last 50 steps) {t['final_loss_mean_last_50']:.4f}."
        )
    notes = "".join(f"- {c[k]}\n" for k in ("ood_concepts_in_pretraining", "text_context") if k in c)
    notes = f"## What to know before reading results\n\n{notes}\n" if notes else ""
    chosen = c.get("selection", "not recorded")
    compared = c.get("recipes_compared") or {}
    if compared:
        sets = list(next(iter(compared.values())))
        chosen += "\n\n| recipe | " + " | ".join(sets) + " |\n|---" * 1 + "|---" * len(sets) + "|\n"
        chosen += "\n".join(
            f"| {name} | " + " | ".join(f"{100 * v[k]:.1f}%" for k in sets) + " |"
            for name, v in compared.items()
        )
    return f"""# {c["model"]} / {c["tag"]}

A small CLIP (ViT image tower 32x32, patch 4, 4 layers, width 128; text tower 3 layers, width 64; joint
space 128) trained from scratch by `scripts/pretrain_mini_clip.py` on the mini-world. It knows its small
world only: clothing, handwritten digits, coloured shapes and textures.

## Zero-shot top-1 on held-out data (prompt "{prompt}", fp16 weights)

| set | classes | images | top-1 |
|---|---|---|---|
{acc}

## Recipe

{recipe}

Trained on {t["device_name"]} ({t["device"]}): {timing}

## How the recipe was chosen

{chosen}

{notes}## Data and licences

{data}

## File

`{c["weights_file"]}`: {c["bytes"]} bytes, sha256 `{c["sha256"]}`. Software: {c["software"]}. Date: {c["date"]}.
"""


V2_TAG = P2.TAG
V2_TARGETS = {"id_top1": 0.60, "style_top1": 0.80}
"""What a v2 model must reach (on the test part) before it may be shipped."""
SUMMARY_FILE = P2.SUMMARY_FILE


def main_v2(args: argparse.Namespace) -> int:
    """Pretrain on mini-world v2; card with the val numbers (and the test numbers with --test)."""
    from negprompt.miniworld import assets, splits
    from negprompt.miniworld.emoji import load_hierarchy
    from negprompt.miniworld.lexicon import WordNet

    if args.install and not args.test:
        print("error: --install needs --test: shipped v2 weights carry the test part's numbers, measured once",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.install and V2_TAG in bundled.tags(P2.MODEL_V2) and not args.force:
        print(f"error: {bundled.weights_path(P2.MODEL_V2, V2_TAG)} holds the shipped v2 weights; add --force to "
              "replace them", file=sys.stderr)  # fmt: skip
        return 2
    if args.train_only and (args.evaluate_only or args.test or args.install):
        print("error: --train-only writes weights only; measure them with --evaluate-only (and --test)",
              file=sys.stderr)  # fmt: skip
        return 2
    arch = None
    if args.evaluate_only:
        try:
            cfg, summary, arch = P2.load_run(args.out)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if arch and args.install:
            print(f"error: {cfg.model} is an architecture variant of {arch['base']} ({arch['changes']}); to ship "
                  "it, add its config to negprompt/model_configs under a name of its own and train it by that "
                  "name", file=sys.stderr)  # fmt: skip
            return 2
    else:
        cfg = recipe(args, P2.PretrainV2Config)
    if args.install and cfg.covariate_artist not in ("", splits.published()["covariate_artist"]):
        print(f"error: the run held out {cfg.covariate_artist!r}, the published split holds out "
              f"{splits.published()['covariate_artist']!r}; shipped weights must match the published split",
              file=sys.stderr)  # fmt: skip
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    weights = P2.weights_file(args.out, cfg)
    try:
        hierarchy, lexicon, split = load_hierarchy(), WordNet(), P2.with_covariate(splits.published(), cfg)
        if not args.evaluate_only:
            t0 = time.perf_counter()
            world = P2.pretraining_world(cfg, hierarchy, split, lexicon, progress=not args.quiet)
            render_s = time.perf_counter() - t0
    except (MiniWorldDataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.evaluate_only:
        shares = P2.domain_weights(cfg.v1_share, cfg.outline_share)
        cfg, budget = fit_budget(args, cfg, world, shares)
        model, summary = P.pretrain(world, cfg, args.out / "state.pt", device=args.device, progress=not args.quiet,
                                    stop_after=args.stop_after, domain_weights=shares)  # fmt: skip
        summary |= budget
        summary["render_pool_s"] = round(render_s, 1)
        summary["device_name"] = _device_name(
            args.device
        )  # where it trained (the card may be written elsewhere)
        if summary["steps_done"] < cfg.steps:
            print(
                f"stopped after step {summary['steps_done']} of {cfg.steps}; run the same command to resume"
            )
            return 0
        P2.save_run(args.out, model, cfg, summary)
        if args.train_only:
            print(f"weights {weights} and {args.out / SUMMARY_FILE}: measure them with --evaluate-only")
            return 0
    elif not weights.is_file():
        print(f"error: {weights} is missing: --evaluate-only measures the weights of a finished run",
              file=sys.stderr)  # fmt: skip
        return 2
    fp16 = P.new_model(cfg.seed, cfg.model)
    fp16.load_state_dict({k: v.float() for k, v in safetensors.torch.load_file(str(weights)).items()})
    results = {"val": P2.evaluate(fp16, split, "val", hierarchy, lexicon, cfg.val_per_pair)}
    if args.test:
        results["test"] = P2.evaluate(fp16, split, "test", hierarchy, lexicon, 7)
    c = card(cfg, summary, P.evaluate(fp16, W.evaluation_world()), weights, summary["device"])
    c["model"], c["tag"] = cfg.model, V2_TAG
    if arch:
        c["architecture_variant"] = arch
    used = {k: v for k, v in assets.licences().items() if k not in assets.OPT_IN_DEBIAN or cfg.clipart}
    c["data"] = DATA_CARD | {"emoji": "mini-world v2 (negprompt.miniworld.world_v2), split "
                                      "negprompt/miniworld/resources/splits-v2.json, covariate artist "
                                      f"{split['covariate_artist']}", **used}  # fmt: skip
    c["recipe"]["domain_weights"] = P2.domain_weights(cfg.v1_share, cfg.outline_share)
    c["v2"] = results
    c["v2_targets"] = V2_TARGETS
    if "test" in results:
        c["v2_targets_met"] = all(results["test"][k] >= v for k, v in V2_TARGETS.items())
    c["recipe"]["loss"] = LOSS_WORDS[cfg.loss]
    stem = f"{cfg.model}-{V2_TAG}"
    P.write_json(args.out / f"{stem}.card.json", c)
    (args.out / f"MODEL_CARD-{V2_TAG}.md").write_text(markdown_v2(c), encoding="utf-8")
    for part, r in results.items():
        print(f"{part}: {r}")
    if args.install:
        for src in (weights, args.out / f"{stem}.card.json", args.out / f"MODEL_CARD-{V2_TAG}.md"):
            atomic_write(bundled.weights_path().parent / src.name, src.read_bytes())
        print(f"installed into {bundled.weights_path().parent} (register the tag in negprompt/bundled.py)")
    return 0


LOSS_WORDS = {
    "all-true-pairs": "symmetric contrastive loss, every true caption-image pair positive",
    "own-caption": "symmetric contrastive loss, each image's own caption the target; the batch's other true "
    "pairs left out of the softmax",
}


def arch_words(model: str) -> str:
    """The architecture in words, from its open_clip config."""
    cfg = open_clip.get_model_config(model)
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    return (
        f"`{model}`: ViT image tower {v['image_size']}x{v['image_size']}, patch {v['patch_size']}, "
        f"{v['layers']} layers, width {v['width']}; text tower {t['layers']} layers, width {t['width']}; "
        f"joint space {cfg['embed_dim']}"
    )


def markdown_v2(c: dict) -> str:
    """The v2 card as Markdown: the val and test numbers, the targets, the recipe and the licences."""
    rows = []
    for part, r in c["v2"].items():
        artists = ", ".join(f"{a} {100 * v:.1f}%" for a, v in r.get("id_top1_by_artist", {}).items())
        rows.append(
            f"| {part} | {100 * r['id_top1']:.1f}% ({r['id_classes']} classes, {r['id_images']} pictures; {artists}) "
            f"| {100 * r['style_top1']:.1f}% | {100 * r['covariate_top1']:.1f}% "
            f"| {100 * r['all_concepts_top1']:.1f}% ({r['all_concepts_classes']} classes) "
            f"| {r['context_cosine']['a photo of a']:.3f} |"
        )
    targets = ", ".join(f"{k} ≥ {100 * v:.0f}%" for k, v in c["v2_targets"].items())
    met = c.get("v2_targets_met")
    verdict = "not measured on test" if met is None else ("met on test" if met else "**not met on test**")
    recipe = "\n".join(f"- `{k}`: {v}" for k, v in c["recipe"].items())
    data = "\n".join(f"- **{k}**: {v}" for k, v in c["data"].items())
    t = c["trained_on"]
    v1 = "\n".join(
        f"| {k} | {v['classes']} | {v['images']} | {100 * v['top1']:.1f}% |"
        for k, v in c["zero_shot_top1"].items()
    )
    return f"""# {c["model"]} / {c["tag"]}

A small CLIP ({arch_words(c["model"])}), trained from scratch on mini-world v2: emoji concepts drawn by
several artists with captions in many templates, plus v1's clothing, digits, shapes and textures.

## Zero-shot numbers (prompt "a photo of a <class>", fp16 weights)

Targets: {targets} ({verdict}). `val` chose the recipe; `test` was measured once, for this card.

| part | ID top-1 | style | covariate artist | all concepts | cos(prompt, name) |
|---|---|---|---|---|---|
{chr(10).join(rows)}

`cos(prompt, name)` is the mean cosine between "a photo of a <class>" and the bare name (v1: 0.995;
lower means the words around a name change its features).

v1's held-out sets:

| set | classes | images | top-1 |
|---|---|---|---|
{v1}

## Recipe

{recipe}

Trained on {t["device_name"]} ({t["device"]}): {t["steps_done"]} steps, {t.get("seconds_this_process", 0):.0f} s
in the last process{peak_words(t)}.

## Data and licences

{data}

## File

`{c["weights_file"]}`: {c["bytes"]} bytes, sha256 `{c["sha256"]}`. Software: {c["software"]}. Date: {c["date"]}.
"""


def main(argv=None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("negprompt").setLevel(logging.INFO)
    if args.world == "v2":
        return main_v2(args)
    if args.train_only or args.evaluate_only:
        print("error: --train-only and --evaluate-only apply to --world v2", file=sys.stderr)
        return 2
    cfg = recipe(args, P.PretrainConfig)
    if args.install and bundled.weights_path().exists() and not args.force:
        print(
            f"error: {bundled.weights_path()} holds the shipped weights; add --force to replace them "
            "(or leave out --install to keep them)",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        world = W.pretraining_world(cfg.seed, cfg.n_shapes, cfg.n_textures)
        held_out = W.evaluation_world()
    except MiniWorldDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg, budget = fit_budget(args, cfg, world, None)
    model, summary = P.pretrain(
        world,
        cfg,
        args.out / "state.pt",
        device=args.device,
        progress=not args.quiet,
        stop_after=args.stop_after,
    )
    summary |= budget
    if summary["steps_done"] < cfg.steps:
        print(f"stopped after step {summary['steps_done']} of {cfg.steps}; run the same command to resume")
        return 0
    weights = args.out / bundled.weights_path().name
    P.save_weights(model, weights)
    fp16_model = P.new_model(cfg.seed, cfg.model)
    fp16_model.load_state_dict({k: v.float() for k, v in safetensors.torch.load_file(str(weights)).items()})
    accuracies = P.evaluate(fp16_model, held_out)
    c = card(cfg, summary, accuracies, weights, args.device)
    P.write_json(args.out / bundled.card_path().name, c)
    (args.out / "MODEL_CARD.md").write_text(markdown(c), encoding="utf-8")
    for name, v in accuracies.items():
        print(
            f"zero-shot top-1 {name:14s} {100 * v['top1']:5.1f}%  ({v['images']} images, {v['classes']} classes)"
        )
    if args.install:
        for src in (weights, args.out / bundled.card_path().name, args.out / "MODEL_CARD.md"):
            atomic_write(bundled.weights_path().parent / src.name, src.read_bytes())
        print(f"installed into {bundled.weights_path().parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
