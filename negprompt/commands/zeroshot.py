"""``negprompt zeroshot``: score ID and OOD image folders with the zero-shot methods.

A thin front-end over the experiment pipeline (preset ``folders``, no training): the hand-made
prompts "a photo of a <class>" scored with MCM (and GL-MCM on ViT backbones), and NegLabel's mined
WordNet labels when enabled; the same zero-shot methods every experiment reports.
"""

from __future__ import annotations

import argparse

from negprompt.commands.common import add_run_options, default_run_dir, execute
from negprompt.commands.options import add_settings
from negprompt.commands.run import config_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "zeroshot",
        help="zero-shot OOD detection of image folders (MCM, GL-MCM, NegLabel)",
        description="Score an ID image folder (one sub-folder per class) and OOD image folders with the "
        "hand-made prompt 'a photo of a <class>' (MCM, GL-MCM) and NegLabel's negative labels; print "
        "FPR95/AUROC per OOD set and write a run directory.",
    )
    keep = {"id_dir", "ood_dirs"}
    from dataclasses import fields

    from negprompt.experiments.config import DataSettings

    add_settings(
        p,
        ("backbone", "data", "evaluation", "cache"),
        exclude={f.name for f in fields(DataSettings)} - keep,
        seed=True,
    )
    for action in p._actions:  # nothing trains here: the seed only groups NegLabel's labels
        if action.dest == "seed":
            action.help = "seed of NegLabel's random grouping of its negative labels (0)"
    add_run_options(p, resume=False)  # nothing trains, so there is nothing to resume
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "id_dir", None) is None or not getattr(args, "ood_dirs", None):
        raise ValueError(
            "--id-dir (ID images, one sub-folder per class) and at least one --ood-dir are required"
        )
    config = config_from_args("folders", args, stages="none")
    execute(config, args.out or default_run_dir("zeroshot"), args)
    return 0
