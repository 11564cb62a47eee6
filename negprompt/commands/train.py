"""``negprompt train``: learn CoOp positive and NegPrompt negative prompts on an image folder.

Writes ``<out>/prompts/coop.{safetensors,json}`` (stage 1) and/or
``<out>/prompts/negprompt.{safetensors,json}`` (stage 2), ``<out>/checkpoints/stage{1,2}/``,
``<out>/train.json`` (settings, data, per-epoch history, selection) and ``<out>/log.txt``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from negprompt.commands.common import (
    add_backbone_args,
    cache_dir_from_args,
    load_backbone_from_args,
    shots_arg,
)

log = logging.getLogger("negprompt")


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="learn positive (CoOp) and negative (NegPrompt) prompts on an image folder",
        description="Few-shot prompt learning on a frozen CLIP: stage 1 learns the positive context "
        "(CoOp), stage 2 the negative contexts (NegPrompt). Image features are computed once and "
        "cached; a validation split of the training folder (or --val-dir) selects the epoch.",
    )
    p.add_argument("--stage", choices=("1", "2", "both"), default="both", help="what to train (default both)")
    p.add_argument("--train-dir", type=Path, required=True, help="training images: one sub-folder per class")
    p.add_argument(
        "--val-dir", type=Path, default=None, help="validation images (default: drawn from --train-dir)"
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (prompts, checkpoints, log)")
    p.add_argument("--preset", choices=("negprompt", "coop"), default="negprompt", help="training defaults")
    p.add_argument("--epochs", type=int, default=None, help="epochs per stage (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    p.add_argument(
        "--train-batch-size", type=int, default=None, help="images per step (default: the preset's)"
    )
    p.add_argument(
        "--shots", type=shots_arg, default=16, help="training images per class, or 'all' (default 16)"
    )
    p.add_argument("--val-per-class", type=int, default=4, help="validation images per class (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampling, shuffling and views (default 0)")
    p.add_argument(
        "--n-views", type=int, default=1, help="feature views: the plain one + N-1 augmented (default 1)"
    )
    p.add_argument("--n-neg", type=int, default=2, help="negative contexts M (default 2)")
    p.add_argument(
        "--img-loss", choices=("msp", "oe"), default="msp", help="stage-2 L_img variant (default msp)"
    )
    p.add_argument("--class-subset-size", type=int, default=None, help="classes whose prompts a step encodes")
    p.add_argument(
        "--select", choices=("val", "last"), default="val", help="keep the best-validation or last epoch"
    )
    p.add_argument(
        "--mode",
        choices=("cached", "online-augment"),
        default="cached",
        help="cached features or online augmentation",
    )
    p.add_argument("--init-prompts", type=Path, default=None, help="stage 2 only: prompts file to start from")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the training run already in --out (its checkpoints, prompts, train.json, log)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_backbone_args(p)
    p.set_defaults(func=run)


def _write_json(path: Path, obj) -> None:
    from negprompt.io import atomic_write

    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str))


OUTPUTS = ("checkpoints", "prompts", "train.json", "log.txt")
"""What ``negprompt train`` writes into ``--out``."""


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an ``--out`` that holds a finished or other run unless asked; clear it for ``--overwrite``.

    Raises:
        FileExistsError: ``out`` is a run directory (``config.json``), or holds a training run and
            neither ``--resume`` nor ``--overwrite`` was given; ``out`` is a file.
    """
    from negprompt.io import clean_stale_temps

    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run, or replace it")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a folder")
    if (out / "config.json").exists():
        raise FileExistsError(
            f"{out} is a run directory (it has config.json), not a training folder; choose another --out "
            "(nothing was changed)"
        )
    present = [name for name in OUTPUTS[:3] if (out / name).exists()]
    if present and not (resume or overwrite):
        raise FileExistsError(
            f"{out} already holds a training run ({', '.join(present)}); pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out (nothing was changed)"
        )
    if overwrite:
        for name in OUTPUTS:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    if out.is_dir():  # temporary files of a killed run
        for folder in (out, out / "prompts", *sorted((out / "checkpoints").glob("stage*"))):
            clean_stale_temps(folder)


def _config(args):
    from negprompt.train import make_config

    overrides = {
        k: v
        for k, v in {"epochs": args.epochs, "lr": args.lr, "batch_size": args.train_batch_size}.items()
        if v is not None
    }
    return make_config(
        args.preset,
        **overrides,
        shots=args.shots,
        val_per_class=0 if args.val_dir else args.val_per_class,
        seed=args.seed,
        n_views=args.n_views,
        img_loss=args.img_loss,
        class_subset_size=args.class_subset_size,
        select=args.select,
        mode=args.mode,
    )


def _data(args, backbone, cache, progress):
    """Few-shot training features (views) and validation features, with labels and class names."""
    import numpy as np

    from negprompt.data import few_shot_split, image_folder
    from negprompt.distributed import extract_features_distributed

    images = image_folder(args.train_dir)
    if args.val_dir:
        train, _ = few_shot_split(images, args.shots, 0, args.seed)
        val = image_folder(args.val_dir)
        if val.class_names != images.class_names:
            raise ValueError(
                f"--val-dir classes {list(val.class_names)} differ from --train-dir's {list(images.class_names)}"
            )
    else:
        train, val = few_shot_split(images, args.shots, args.val_per_class, args.seed)

    def extract(imageset, view):
        return extract_features_distributed(  # split across ranks under torchrun, else one process
            backbone,
            imageset,
            cache_dir=cache,
            view=view,
            seed=args.seed,
            batch_size=args.batch_size,
            progress=progress,
        )

    if args.mode == "online-augment":
        feats, labels = train, None
    else:
        views = [extract(train, v) for v in range(args.n_views)]
        labels = views[0].labels
        if any(not np.array_equal(v.labels, labels) for v in views[1:]):
            raise ValueError(
                "the feature views of the training set disagree on their images (unreadable files?)"
            )
        feats = [v.features for v in views]
    val_feats = extract(val, 0) if len(val) else None
    names = [n.replace("_", " ") for n in images.class_names]
    facts = {
        "train_dir": str(images.root),
        "val_dir": str(val.root) if args.val_dir else None,
        "class_names": names,
        "n_train": len(train),
        "n_val": len(val),
    }
    return feats, labels, val_feats, names, facts


def run(args: argparse.Namespace) -> int:
    from negprompt.cli import UserError
    from negprompt.commands.common import check_outputs
    from negprompt.distributed import ShardedTextFeatures, cleanup, init_distributed
    from negprompt.promptfile import learner_from_file, save_prompts
    from negprompt.train import NonFiniteLossError, for_stage, train_prompts

    out: Path = args.out
    check_out(out, args.resume, args.overwrite)
    check_outputs(out, cache_dir_from_args(args))  # before any long work
    if args.init_prompts and args.stage != "2":
        raise ValueError("--init-prompts only applies to --stage 2")
    config = _config(args)
    info = init_distributed(device=None if args.device == "auto" else args.device)
    main_rank = info.is_main
    if info.world > 1:
        args.device = str(info.device)  # one device per rank
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "log.txt", encoding="utf-8") if main_rank else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    package_log = logging.getLogger("negprompt")
    level = package_log.level
    package_log.addHandler(handler)
    package_log.setLevel(min(package_log.getEffectiveLevel(), logging.INFO))  # log.txt gets every epoch line
    try:
        backbone = load_backbone_from_args(args)
        progress = not args.no_progress and main_rank
        feats, labels, val_feats, names, facts = _data(args, backbone, cache_dir_from_args(args), progress)
        log.info(
            "training on %d images of %d classes, validating on %d",
            facts["n_train"],
            len(names),
            facts["n_val"],
        )
        learner = learner_from_file(args.init_prompts, backbone) if args.init_prompts else None
        stages = [1, 2] if args.stage == "both" else [int(args.stage)]
        summaries = []
        record = {"backbone": backbone.describe(), "data": facts, "stages": summaries}
        for stage in stages:
            result = train_prompts(
                backbone,
                names,
                feats,
                labels,
                for_stage(config, stage),
                val_features=None if val_feats is None else val_feats.features,
                val_labels=None if val_feats is None else val_feats.labels,
                learner=learner,
                prompt_config=None if learner is not None else _prompt_config(args),
                checkpoint_dir=out / "checkpoints" / f"stage{stage}",
                resume=args.resume,
                progress=progress,
                text_fn=ShardedTextFeatures(mode=config.encode_mode),
            )
            learner = result.learner
            summary = result.summary()
            summaries.append(summary)
            method = "coop" if stage == 1 else "negprompt"
            extra = {k: v for k, v in summary.items() if k != "history"}
            if not main_rank:
                continue
            files = save_prompts(out / "prompts" / method, learner, backbone, names, extra=extra)
            _write_json(out / "train.json", record)
            log.info(
                "stage %d: kept epoch %d (%s); prompts written to %s",
                stage,
                result.selected_epoch,
                "best on validation" if result.selected == "val" else "last epoch",
                files[0],
            )
    except NonFiniteLossError as exc:
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted: every finished epoch is saved in {out}; run the same command with --resume "
            "to continue"
        ) from None
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(level)
        handler.close()
        cleanup()
    return 0


def _prompt_config(args):
    from negprompt.prompts import PromptConfig

    return PromptConfig(n_neg=args.n_neg)
