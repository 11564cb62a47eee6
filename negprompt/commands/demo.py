"""``negprompt demo``: the embedded demo benchmark end to end, then the dashboard.

ID = six Fashion-MNIST clothing classes, near-OOD = the other four, far-OOD = handwritten digits;
backbone ``negprompt-mini`` with its bundled weights (offline; ``--model ViT-B-32 --pretrained openai``
runs the same data with a real CLIP). ``--fast`` trains few epochs; ``--no-app`` skips the dashboard.
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
"""Epochs per stage of ``--world v2`` (152 classes; with 2 threads the run takes about 1 min 50 s on
2 CPU cores, benchmarks/RESULTS.md)."""
THREADS = {"v1": 1, "v2": 2}
"""Default ``--threads`` of each world (v1's tiny steps are fastest on one thread)."""


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the demo benchmark end to end, then the dashboard",
        description="Run the embedded demo benchmark (Fashion-MNIST clothing as ID, held-out clothing as "
        "near-OOD, handwritten digits as far-OOD) with the bundled mini-CLIP negprompt-mini: cached "
        "features, CoOp and NegPrompt prompts, zero-shot MCM / CoOp + MCM / NegPrompt results table, a run "
        "directory, and the dashboard. Works offline; --model/--pretrained run it with any CLIP.",
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
        default="v1",
        help="v2: mini-world v2's conventional benchmark (152 emoji concepts; negprompt-mini2, whose weights "
        "miss their accuracy target; prepare it with `negprompt data prepare miniworld-v2`)",
    )
    p.add_argument("--full", action="store_true", help="the whole Fashion-MNIST (downloaded once)")
    p.add_argument(
        "--cifar", type=int, choices=(10, 100), default=None, help="CIFAR-10 or -100 as ID (downloaded once)"
    )
    add_settings(p, exclude=FOLDER_SETTINGS + ("benchmark", "protocol", "ood_sets", "open_vocab_fraction"))
    add_run_options(p, threads_default=None, threads_note="1; 2 with --world v2")
    p.set_defaults(func=run)


FOLDER_SETTINGS = ("train_dir", "val_dir", "id_dir", "ood_dirs", "init_prompts", "stages")
"""Settings of image-folder runs, which the demo does not take."""


def run(args: argparse.Namespace) -> int:
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out: the run directory of the interrupted demo")
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
    name = ("demo-fast" if args.fast else "demo") + ("-v2" if args.world == "v2" else "")
    out = args.out or default_run_dir(name, args.runs_dir)
    path = execute(config, out, args)
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
