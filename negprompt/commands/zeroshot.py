"""``negprompt zeroshot``: score ID and OOD image folders with untrained prompts (MCM, NegPrompt)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from negprompt.commands.common import (
    add_backbone_args,
    cache_dir_from_args,
    default_run_dir,
    load_backbone_from_args,
)

log = logging.getLogger("negprompt")


def register(sub) -> None:
    p = sub.add_parser(
        "zeroshot",
        help="zero-shot OOD detection of image folders with untrained prompts",
        description="Score an ID image folder (one sub-folder per class) and OOD image folders with the "
        "hand-made prompt 'a photo of a <class>' (MCM) and untrained negative prompts (NegPrompt score); "
        "print FPR95/AUROC per OOD set and write a run directory.",
    )
    p.add_argument("--id-dir", type=Path, required=True, help="ID images: one sub-folder per class")
    p.add_argument(
        "--ood-dir", type=Path, action="append", required=True, help="OOD image folder (repeatable)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="run directory to write (default runs/zeroshot-<time>)"
    )
    p.add_argument("--n-neg", type=int, default=2, help="number of negative contexts M (default 2)")
    p.add_argument("--temperature", type=float, default=1.0, help="score temperature T (default 1)")
    add_backbone_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from negprompt.commands.common import check_outputs
    from negprompt.data import image_folder
    from negprompt.evaluate import EvalSet, Method, evaluate, format_table, write_evaluation
    from negprompt.features import extract_features
    from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder

    out = args.out or default_run_dir("zeroshot")
    if out.exists():
        raise FileExistsError(
            f"run directory {out} already exists; choose another --out (nothing was changed)"
        )
    cache = cache_dir_from_args(args)
    check_outputs(out.parent, cache)  # not only at the end, after every feature is computed
    id_images = image_folder(args.id_dir)
    names = [n.replace("_", " ") for n in id_images.class_names]
    ood_images = [image_folder(d, ood=True) for d in args.ood_dir]
    backbone = load_backbone_from_args(args)

    def feats(images):
        return EvalSet(
            images.name,
            extract_features(backbone, images, cache_dir=cache, batch_size=args.batch_size),
            images.root,
        )

    id_set, ood_sets = feats(id_images), [feats(s) for s in ood_images]
    learner = PromptLearner(TextEncoder(backbone), PromptConfig(n_neg=args.n_neg))
    with torch.no_grad():
        pos, neg = learner(learner.class_names(names))
    method = Method("zeroshot", pos, neg, context_tokens=learner.context_tokens())
    result = evaluate([method], id_set, ood_sets, names, temperature=args.temperature)
    table = format_table(result.metrics, rows=[("zeroshot", "mcm"), ("zeroshot", "negprompt")])
    banner = f"\n!!! {backbone.warning}\n" if backbone.warning else ""
    path = write_evaluation(
        out,
        result,
        kind="zeroshot",
        backbone=backbone,
        class_names=names,
        data_roots=[id_images.root, *[s.root for s in ood_images]],
        id_name=id_images.name,
        experiment={"prompt": "a photo of a {class}", "n_neg": args.n_neg, "temperature": args.temperature},
        log=banner + table,
    )
    print(banner + table)
    print(f"run directory: {path}")
    return 0
