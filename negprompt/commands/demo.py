"""``negprompt demo``: the demo benchmark end to end, then the dashboard.

By default mini-world v2's conventional benchmark (``mini-conventional``): 152 emoji concepts as ID,
held-out concepts of the same subgroups as near OOD, held-out groups as far OOD, textures and clothing;
backbone ``negprompt-mini2`` with its bundled weights. It needs Debian's emoji fonts and one npm
download (``negprompt data prepare miniworld-v2``, which the demo runs itself when the download is
missing), then works offline.

``--world v1`` runs the embedded Fashion-MNIST demo instead (ID = six clothing classes, near OOD = the
other four, far OOD = handwritten digits; ``negprompt-mini``; nothing to install), as do ``--full``
and ``--cifar``. ``--model ViT-B-32 --pretrained openai`` runs the same data with a real CLIP;
``--fast`` trains few epochs; ``--no-app`` skips the dashboard.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from negprompt.commands.common import add_run_options, default_run_dir, execute
from negprompt.commands.options import add_settings
from negprompt.commands.run import config_from_args

FAST_EPOCHS = 10
"""Epochs per stage with ``--fast`` (a smoke run of the whole pipeline)."""
V2_EPOCHS = 10
"""Epochs per stage on v2 (152 classes; with 2 threads the run takes about 1 min 50 s on 2 CPU cores,
benchmarks/RESULTS.md)."""
THREADS = {"v1": 1, "v2": 2}
"""Default ``--threads`` of each world (v1's tiny steps are fastest on one thread)."""


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the demo benchmark end to end, then the dashboard",
        description="Run the demo benchmark end to end: mini-world v2's conventional benchmark (152 emoji "
        "concepts as ID; near OOD, far OOD, textures and clothing) with the bundled mini-CLIP negprompt-mini2 "
        "(--world v1: the embedded Fashion-MNIST demo with negprompt-mini): cached features, CoOp, LoCoOp "
        "and NegPrompt prompts, every baseline's results with intervals, a run directory, and the dashboard. "
        "v2 needs one download the first time (negprompt data prepare miniworld-v2, run for you when it is "
        "missing); then everything is offline. --model/--pretrained run it with any CLIP.",
    )
    p.add_argument(
        "--fast", action="store_true", help="few epochs: a smoke run of the whole pipeline in seconds"
    )
    p.add_argument("--no-app", action="store_true", help="do not start the dashboard")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="folder of run directories (runs)")
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="dashboard port (8501)")
    p.add_argument(
        "--world",
        choices=("v1", "v2"),
        default=None,
        help="v2 (the default): mini-world v2's conventional benchmark (152 emoji concepts; negprompt-mini2, "
        "whose weights miss their accuracy target); v1: the embedded Fashion-MNIST demo (negprompt-mini; "
        "the default with --full or --cifar)",
    )
    p.add_argument("--full", action="store_true", help="the whole Fashion-MNIST (downloaded once)")
    p.add_argument(
        "--cifar", type=int, choices=(10, 100), default=None, help="CIFAR-10 or -100 as ID (downloaded once)"
    )
    add_settings(p, exclude=FOLDER_SETTINGS + ("benchmark", "protocol", "ood_sets", "open_vocab_fraction"))
    add_run_options(p, threads_default=None, threads_note="2; 1 with --world v1")
    p.set_defaults(func=run)


FOLDER_SETTINGS = ("train_dir", "val_dir", "id_dir", "ood_dirs", "init_prompts", "stages")
"""Settings of image-folder runs, which the demo does not take."""


def run(args: argparse.Namespace) -> int:
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out: the run directory of the interrupted demo")
    if args.world is None:
        args.world = "v1" if args.full or args.cifar else "v2"
    if args.threads is None:
        args.threads = THREADS[args.world]
    forced: dict = {}
    if args.fast and getattr(args, "epochs", None) is None:
        forced["epochs"] = FAST_EPOCHS
    if args.full and args.cifar:
        raise ValueError("--full and --cifar exclude each other")
    if args.full or args.cifar:
        forced["benchmark"] = "demo-full" if args.full else f"cifar{args.cifar}"
    if args.world == "v2":
        if args.full or args.cifar:
            raise ValueError("--world v2 runs mini-world v2's own benchmark: leave out --full and --cifar")
        forced["benchmark"] = "mini2"
        if getattr(args, "epochs", None) is None and not args.fast:
            forced["epochs"] = V2_EPOCHS
        config = config_from_args("mini-conventional", args, **forced)
    else:
        config = config_from_args("demo", args, **forced)
    name = ("demo-fast" if args.fast else "demo") + ("-v1" if args.world == "v1" else "")
    out = args.out or default_run_dir(name, args.runs_dir)
    path = execute(config, out, args, v1_way="`negprompt demo --world v1`, the Fashion-MNIST demo")
    if args.no_app:
        return 0
    runs_dir = args.runs_dir if _inside(path, args.runs_dir) else path.parent
    from negprompt.commands.app import launch_app

    try:
        return int(launch_app(runs_dir, args.host, args.port, block=True))
    except ModuleNotFoundError as exc:  # the dashboard's extra is not installed
        print(f"the dashboard cannot start ({exc}); with the app extra installed: negprompt app {runs_dir}")
        return 0


def _inside(path: Path, folder: Path) -> bool:
    a, b = os.path.abspath(path), os.path.abspath(folder)
    return os.path.commonpath([a, b]) == b
