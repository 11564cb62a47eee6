"""``negprompt run PRESET``: one of the paper's experiments (or a mini-world one) end to end, written
as a run directory; under ``torchrun`` the features and the prompt encoding are split across ranks."""

from __future__ import annotations

import argparse
from pathlib import Path

from negprompt.commands.common import add_run_options, default_run_dir, execute
from negprompt.commands.options import add_settings, settings_from_args


def register(sub) -> None:
    from negprompt.experiments.config import PRESETS

    p = sub.add_parser(
        "run",
        help="the paper's experiments end to end (conventional, hard-ood, open-vocab, demo, mini-*)",
        description="Run an experiment preset end to end: cached image features, CoOp positive prompts "
        "(stage 1), NegPrompt negative prompts (stage 2), and the baselines (zero-shot MCM, CoOp + MCM, "
        "GL-MCM, LoCoOp, NegLabel) beside NegPrompt on every OOD set. Prints a paper-shaped table and "
        "writes a run directory. Every setting not given keeps the preset's default.",
    )
    p.add_argument("preset", choices=tuple(PRESETS), help="the experiment")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="run once per seed into OUT/seed-<k> and report mean ± std (mini presets: 0 1 2)",
    )
    add_settings(p)
    add_run_options(p)
    p.set_defaults(func=run)


def config_from_args(preset: str, args: argparse.Namespace, **forced):
    """The :class:`ExperimentConfig` of ``preset`` with every setting given on the command line."""
    from negprompt.experiments import ExperimentConfig

    settings = settings_from_args(args)
    if "open_vocab_seed" in settings and "open_vocab_mode" not in settings:
        settings["open_vocab_mode"] = "random"  # a seed asks for a random choice
    settings.update(forced)
    return ExperimentConfig.for_preset(preset, **settings)


def seeds_of(args: argparse.Namespace) -> list[int] | None:
    """The seeds of a multi-seed run, or None for one run (``--seed``, or a non-mini preset)."""
    from negprompt.experiments.config import MINI_SEEDS, PRESET_KIND

    seed = getattr(args, "seed", None)
    if args.seeds is not None and seed is not None:
        raise ValueError("give --seed (one run) or --seeds (one run per seed), not both")
    if args.seeds is not None:
        if len(set(args.seeds)) != len(args.seeds):
            raise ValueError(f"--seeds lists a seed twice: {args.seeds}")
        return list(args.seeds)
    if seed is None and args.preset in PRESET_KIND:
        return list(MINI_SEEDS)
    return None


def run_seeds(args: argparse.Namespace, seeds: list[int], out: Path) -> Path:
    """One run per seed under ``out/seed-<k>``, then ``summary.csv`` / ``summary.md`` in ``out``."""
    from negprompt.experiments.seeds import format_summary, seeds_verdict, summarize
    from negprompt.io import atomic_write
    from negprompt.metrics import FPR_CONVENTION
    from negprompt.rundir import load_run

    metrics, scores = {}, {}
    for seed in seeds:
        print(f"== seed {seed} ({seeds.index(seed) + 1} of {len(seeds)})", flush=True)
        config = config_from_args(args.preset, args, seed=seed)
        path = execute(config, out / f"seed-{seed}", args)
        run = load_run(path)
        metrics[seed], scores[seed] = run.metrics, run.scores
    bootstrap = config.bootstrap()
    summary = summarize(metrics, scores, bootstrap)
    verdict = seeds_verdict(summary, bootstrap.level)
    table = format_summary(summary)
    note = (
        f"mean ± sd over seeds {seeds} (n = seeds), [pooled {round(100 * bootstrap.level)}% bootstrap interval of "
        f"the mean over {bootstrap.n_resamples} resamples of the test images], in %. {FPR_CONVENTION}."
    )
    atomic_write(out / "summary.csv", summary.to_csv(index=False))
    atomic_write(out / "summary.md", f"# {args.preset}\n\n{verdict}\n\n{note}\n\n{table}\n")
    print(f"\n{verdict}\n\n{note}\n{table}\nsummary: {out / 'summary.md'}")
    return out


def run(args: argparse.Namespace) -> int:
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out: the run directory of the interrupted run")
    seeds = seeds_of(args)
    out = args.out or default_run_dir(args.preset)
    if seeds is not None:
        run_seeds(args, seeds, out)
        return 0
    execute(config_from_args(args.preset, args), out, args)
    return 0
