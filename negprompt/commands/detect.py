"""``negprompt detect RUN --images DIR``: apply a finished run to new images.

A thin front-end over `negprompt.detect.Detector`: the run's prompts and backbone score every image
of the folders (recursive) and files given; the threshold keeps 95% of the run's ID validation images
unless ``--tpr`` or ``--threshold`` says otherwise. Writes a run directory (kind ``detect``) holding
``decisions.csv`` / ``decisions.parquet``, which the dashboard opens like any other run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from negprompt.commands.common import default_run_dir


def register(sub) -> None:
    p = sub.add_parser(
        "detect",
        help="apply a finished run's prompts to new images: scores, ID/OOD decisions, predicted classes",
        description="Score new images with a finished run's methods (its prompts/ and backbone) and decide "
        "ID or OOD with a recorded threshold rule: by default the score keeping 95%% of the run's ID "
        "validation images (a run without them, e.g. zero-shot, falls back to its ID test images and "
        "says so). Writes decisions.csv, decisions.parquet and a run directory the dashboard opens.",
    )
    p.add_argument("run", metavar="RUN", help="a finished run directory (demo, run, train or zeroshot)")
    p.add_argument(
        "--images",
        action="append",
        required=True,
        metavar="PATH",
        help="an image folder (searched recursively) or image file; repeatable",
    )
    p.add_argument("--out", type=Path, default=None, help="output run directory (default runs/detect-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it holds earlier detections")
    p.add_argument(
        "--score",
        default=None,
        metavar="METHOD/SCORE",
        help="the score that decides (default: negprompt/negprompt, else the run's best-ranked one)",
    )
    rule = p.add_mutually_exclusive_group()
    rule.add_argument(
        "--tpr",
        type=_fraction,
        default=0.95,
        help="keep this fraction of the run's ID validation images (0.95)",
    )
    rule.add_argument("--threshold", type=float, default=None, help="a fixed threshold instead of --tpr")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, … or auto (cuda when available)")
    p.add_argument("--cache-dir", default=None, help="feature cache (default: the run's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _fraction(text: str) -> float:
    """``--tpr``: a number in (0, 1] (an argparse error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], e.g. 0.95, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from negprompt.commands.common import UserError, check_outputs
    from negprompt.detect import DetectError, Detector
    from negprompt.detect_write import check_output, write_detections
    from negprompt.distributed import cleanup, init_distributed
    from negprompt.runlog import capture_log

    out = check_output(args.out or default_run_dir("detect"), args.overwrite)
    check_outputs(out.parent)
    lines: list[str] = []
    info = init_distributed(device=args.device)
    try:
        with capture_log(lines):
            try:
                detector = Detector.from_run(
                    args.run, score=args.score, tpr=args.tpr, threshold=args.threshold,
                    device=args.device, progress=not args.no_progress,
                )  # fmt: skip
            except DetectError as err:
                raise UserError(str(err)) from err
            print(f"rule: {detector.threshold.describe()}", flush=True)
            table, feats = detector.scores_and_features(
                args.images, cache_dir=args.cache_dir, progress=not args.no_progress
            )
            decisions = detector.add_decisions(table)
    finally:
        cleanup()
    if not info.is_main:
        return 0
    skipped = detector.last_inputs.skipped_summary() if detector.last_inputs else ""  # logged already
    text = "\n".join([*lines, f"rule: {detector.threshold.describe()}", skipped]).strip() + "\n"
    path = write_detections(out, detector, decisions, feats, overwrite=args.overwrite, log=text)
    accepted = int(decisions["decision"].eq("id").sum())
    print(f"{accepted} of {len(decisions)} images accepted as in-distribution ({detector.threshold.score})")
    print(f"decisions: {path / 'decisions.csv'}\nrun directory: {path}")
    return 0
