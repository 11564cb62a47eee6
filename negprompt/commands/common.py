"""Arguments and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def shots_arg(text: str) -> int | None:
    """``--shots``: a number of images per class >= 1, or ``all``."""
    if text == "all":
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("--shots must be >= 1 or 'all'")
    return value


def add_backbone_args(parser: argparse.ArgumentParser, model: str = "ViT-B-16") -> None:
    g = parser.add_argument_group("backbone")
    g.add_argument(
        "--model", default=model, help=f"open_clip architecture or hf-hub:org/repo (default {model})"
    )
    g.add_argument(
        "--pretrained",
        default="auto",
        help="weights: an open_clip tag, a hub id, a checkpoint file, 'none' (random) or 'auto' (default)",
    )
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, … (default: cuda when available)")
    g.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"), help="model weight dtype")
    g.add_argument("--batch-size", type=int, default=64, help="images per batch for feature extraction")
    g.add_argument(
        "--cache-dir", type=Path, default=None, help="feature cache (default ~/.cache/negprompt/features)"
    )


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_backbone_from_args(args):
    from negprompt.backbone import load_backbone

    return load_backbone(
        args.model, args.pretrained, device=resolve_device(args.device), precision=args.precision
    )


def cache_dir_from_args(args) -> Path:
    from negprompt.features import default_cache_dir

    return args.cache_dir or default_cache_dir()


def default_run_dir(kind: str, base: str | os.PathLike = "runs") -> Path:
    return Path(base) / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_outputs(*folders: str | os.PathLike) -> None:
    """Check, before any long work, that files can be created in each folder (or where it would be
    created); raises `OSError` naming the folder (the CLI prints it with what to do)."""
    from negprompt.io import check_writable

    for folder in folders:
        check_writable(folder)
