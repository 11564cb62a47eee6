"""``negprompt train``: learn CoOp positive and NegPrompt negative prompts on an image folder.

A thin front-end over the experiment pipeline (preset ``folders``): features of the training
folder (cached; sharded under ``torchrun``), stage 1 and/or stage 2, then the evaluation of the ID
test folder and OOD folders when given, written as an ordinary run directory whose ``prompts/``
holds the learned prompts (``coop`` and ``negprompt`` ``.safetensors`` / ``.json``).
"""

from __future__ import annotations

import argparse

from negprompt.commands.common import add_run_options, default_run_dir, execute
from negprompt.commands.options import add_settings
from negprompt.commands.run import config_from_args

EXCLUDED = ("data_root", "benchmark", "protocol", "ood_sets", "classes", "id_classes",
            "open_vocab_fraction", "open_vocab_mode", "open_vocab_seed")  # fmt: skip
"""Settings of the paper's benchmarks, which an image-folder run does not take."""


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="learn positive (CoOp) and negative (NegPrompt) prompts on an image folder",
        description="Few-shot prompt learning on a frozen CLIP: stage 1 learns the positive context "
        "(CoOp), stage 2 the negative contexts (NegPrompt). Image features are computed once and "
        "cached; a validation split of --train-dir (or --val-dir) selects the epoch. With --id-dir and "
        "--ood-dir the learned prompts are evaluated too. Writes a run directory (prompts/ holds the "
        "prompt files) that the dashboard opens.",
    )
    add_settings(p, exclude=EXCLUDED)
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "train_dir", None) is None:
        raise ValueError("--train-dir is required: training images, one sub-folder per class")
    config = config_from_args("folders", args)
    execute(config, args.out or default_run_dir("train"), args)
    return 0
