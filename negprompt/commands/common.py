"""What the sub-commands share: :class:`UserError`, the run options, and :func:`execute`.

Every command that computes results builds an :class:`~negprompt.experiments.ExperimentConfig`
(from a preset and the flags of `negprompt.commands.options`) and hands it to :func:`execute`, which
runs the one experiment pipeline (`negprompt.experiments.run_experiment`) into a run directory.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def add_run_options(
    parser: argparse.ArgumentParser,
    *,
    threads_default: int | None = 0,
    resume: bool = True,
    threads_note: str | None = None,
) -> None:
    """``--out``, ``--unique``, ``--resume`` (commands that train), ``--no-progress`` and ``--threads``:
    how to run, not what. ``threads_default=None`` leaves the choice to the command (``threads_note``
    says what it is)."""
    o = parser.add_argument_group("output")
    o.add_argument(
        "--out", type=Path, default=None, help="run directory to write (default runs/<kind>-<time>)"
    )
    o.add_argument("--unique", action="store_true", help="if --out exists, write --out-2, -3 … instead")
    if resume:
        o.add_argument("--resume", action="store_true", help="continue the interrupted run of --out")
    else:
        parser.set_defaults(resume=False)
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    o.add_argument(
        "--threads",
        type=int,
        default=threads_default,
        help=f"CPU threads of PyTorch; 0 = PyTorch's default ({threads_note or threads_default})",
    )


def default_run_dir(kind: str, base: str | os.PathLike = "runs") -> Path:
    return Path(base) / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_outputs(*folders: str | os.PathLike) -> None:
    """Check, before any long work, that files can be created in each folder (or where it would be
    created); raises `OSError` naming the folder (the CLI prints it with what to do)."""
    from negprompt.io import check_writable

    for folder in folders:
        check_writable(folder)


def set_threads(threads: int, device: str) -> None:
    """Use ``threads`` CPU threads for PyTorch (0: leave its default) when running on the CPU."""
    import torch

    if threads < 0:
        raise ValueError(f"--threads must be >= 0, got {threads}")
    if threads and device == "cpu":
        torch.set_num_threads(threads)


MINI2_BENCHMARKS = ("mini2", "mini2-hard")
V1_WAY = "`--benchmark mini` (or `mini-hard`), mini-world v1"
"""What a mini-world v2 error offers instead: v1, which needs nothing to install or download."""


def prepare_mini2(data_root: str, progress: bool = True, v1_way: str = V1_WAY) -> None:
    """Before a mini-world v2 run: :func:`negprompt.miniworld.benchmark_v2.prepare` (nothing when its
    image folders are complete; else Debian's drawings checked and npm's Twemoji downloaded once).

    Raises:
        UserError: a Debian package is missing (its install command), or the download failed (why,
            and that running again resumes it); each offers ``v1_way``, which needs neither.
    """
    from negprompt.miniworld.benchmark_v2 import prepare
    from negprompt.miniworld.sources import MiniWorldDataError

    try:
        prepare(data_root, progress=progress)
    except MiniWorldDataError as exc:
        raise UserError(f"{exc}; or run {v1_way}, which needs no install or download") from exc


def execute(config, out: Path, args: argparse.Namespace, v1_way: str = V1_WAY) -> Path:
    """Run ``config`` into the run directory ``out`` (under torchrun: on every rank, rank 0 writes),
    print the results table; clear errors for the usual failures. A mini-world v2 run first gets what
    its pictures need (:func:`prepare_mini2`; ``v1_way`` is what its errors offer instead)."""
    from negprompt.checks import format_checks
    from negprompt.data import DownloadError
    from negprompt.defaults import check_device_present
    from negprompt.distributed import cleanup, init_distributed
    from negprompt.experiments import run_experiment, work_dir_for
    from negprompt.leaderboard import format_results
    from negprompt.rundir import load_run
    from negprompt.train import NonFiniteLossError

    if args.resume and args.out is None:
        raise ValueError("--resume needs --out: the run directory of the interrupted run")
    check_device_present(config.backbone.device)  # before any work: a clear line, not a traceback
    # under torchrun every rank asks: one downloads and writes, the others wait for it (locks)
    if config.data.benchmark in MINI2_BENCHMARKS:
        prepare_mini2(config.data.data_root, progress=not args.no_progress, v1_way=v1_way)
    info = init_distributed(device=config.backbone.device)
    set_threads(getattr(args, "threads", 0), config.device)
    try:
        if info.is_main:
            check_outputs(Path(out).expanduser().absolute().parent, config.cache_path())  # before long work
        try:
            path = run_experiment(
                config, out, resume=args.resume, progress=not args.no_progress, unique=args.unique
            )
        except (DownloadError, NonFiniteLossError) as exc:
            raise UserError(str(exc)) from exc
        except KeyboardInterrupt:
            raise KeyboardInterrupt(
                f"interrupted: finished epochs are kept in {work_dir_for(out)}; run the same command with "
                f"--resume --out {out} to continue"
            ) from None
    finally:
        cleanup()
    if not info.is_main:
        return path
    run = load_run(path)
    warning = run.config["backbone"].get("warning")
    banner = f"\n!!! {warning}\n" if warning else ""
    level = float((run.config.get("intervals") or {}).get("level", 0.95))
    print(banner + format_results(run.metrics, level))
    hardest = hardest_ood_classes(run.scores)
    if hardest:
        print(hardest)
    if run.checks is not None:
        print(format_checks(run.checks))
    print(f"run directory: {path}")
    return path


def hardest_ood_classes(scores, column: str = "negprompt/negprompt", k: int = 5) -> str:
    """The ``k`` OOD classes most often accepted at ``column``'s FPR95 threshold, as text ("" when
    the run's OOD sets have no classes or lack the column)."""
    if column not in scores.columns or "ood_class" not in scores.columns:
        return ""
    from negprompt.analysis import ood_class_breakdown, threshold_at_tpr

    threshold = threshold_at_tpr(scores.loc[scores["split"] == "id", column], 0.95)
    table = ood_class_breakdown(scores, column, threshold)
    if table.empty:
        return ""
    lines = [f"hardest OOD classes ({column} at the FPR95 threshold; all: negprompt app, per-image page):"]
    for r in table.head(k).itertuples():
        lines.append(
            f"  {r.ood_class} ({r.dataset}): {r.accepted}/{r.images} accepted as ID, AUROC {100 * r.auroc:.2f}"
        )
    return "\n".join(lines)
