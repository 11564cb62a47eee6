"""``negprompt run PRESET``: one of the paper's experiments end to end, written as a run directory."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from negprompt.commands.common import add_backbone_args, default_run_dir, shots_arg

log = logging.getLogger("negprompt")
PRESET_CHOICES = (
    "conventional",
    "hard-ood",
    "open-vocab",
    "demo",
    "mini-conventional",
    "mini-hard-ood",
    "mini-open-vocab",
)


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. epochs=20), got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _names(text: str) -> list[str]:
    """A comma-separated list, or ``@FILE`` with one name per line."""
    if text.startswith("@"):
        lines = Path(text[1:]).expanduser().read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [part.strip() for part in text.split(",") if part.strip()]


def add_experiment_args(p: argparse.ArgumentParser, *, demo: bool = False) -> None:
    """Options shared by ``negprompt run`` and ``negprompt demo`` (defaults None = the preset's)."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--data-root",
        default=None,
        help="folder holding ImageNet1k/, the OOD sets, demo/ … "
        "(default: data; the demo: ~/.cache/negprompt/data)",
    )
    g.add_argument("--full", action="store_true", help="demo: the whole Fashion-MNIST (downloaded once)")
    g.add_argument(
        "--cifar",
        type=int,
        choices=(10, 100),
        default=None,
        help="demo: CIFAR-10 or -100 as ID (downloaded once)",
    )
    if not demo:
        from negprompt.data import protocol_names

        g.add_argument(
            "--benchmark",
            choices=("imagenet", "openood", "mini", "demo", "demo-full", "cifar10", "cifar100"),
            default=None,
            help="the ID data (default imagenet); conventional: imagenet or openood (OpenOOD v1.5 lists)",
        )
        g.add_argument(
            "--protocol",
            default=None,
            help="hard-ood: " + ", ".join(repr(n) for n in protocol_names()),
        )
        g.add_argument(
            "--ood-sets", type=_names, default=None, help="OOD sets under the data root (default all four)"
        )
        g.add_argument("--classes", type=int, default=None, help="keep only the first N ID classes")
        g.add_argument(
            "--id-classes", type=_names, default=None, help="ID classes: synsets, indices or names (or @FILE)"
        )
        g.add_argument("--fraction", type=float, default=None, help="open-vocab: fraction of classes (0.1)")
        g.add_argument(
            "--class-choice", choices=("first", "random"), default=None, help="open-vocab: which classes"
        )
        g.add_argument("--class-seed", type=int, default=None, help="open-vocab: seed of a random choice")
    t = p.add_argument_group("training")
    t.add_argument(
        "--shots", type=shots_arg, default=argparse.SUPPRESS, help="training images per class, or 'all'"
    )
    t.add_argument("--val-per-class", type=int, default=None, help="validation images per class")
    t.add_argument("--seed", type=int, default=None, help="seed of sampling, views and training (0)")
    if not demo:
        t.add_argument(
            "--seeds",
            type=int,
            nargs="+",
            default=None,
            help="run once per seed into OUT/seed-<k> and report mean ± std (mini presets: 0 1 2)",
        )
    t.add_argument("--epochs", type=int, default=None, help="epochs of each stage")
    if not demo:
        t.add_argument("--n-views", type=int, default=None, help="feature views per training image (1)")
        t.add_argument("--n-neg", type=int, default=None, help="negative contexts M (2)")
        t.add_argument(
            "--neg-noise", type=float, default=None, help="initial noise of the negatives, x context std"
        )
        t.add_argument(
            "--train-preset", choices=("negprompt", "coop"), default=None, help="training defaults"
        )
        t.add_argument("--lr", type=float, default=None, help="learning rate of both stages")
        t.add_argument("--train-batch-size", type=int, default=None, help="images per training step")
        t.add_argument("--class-subset-size", type=int, default=None, help="classes encoded per step")
        t.add_argument("--img-loss", choices=("msp", "oe"), default=None, help="stage-2 L_img variant")
        t.add_argument("--select", choices=("val", "last"), default=None, help="epoch selection (val)")
        t.add_argument("--temperature", type=float, default=None, help="score temperature T (1)")
        t.add_argument(
            "--neglabel",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="NegLabel with WordNet labels (default: on, off for the demo)",
        )
        t.add_argument(
            "--local-scores",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="GL-MCM scores of the zero-shot and CoOp prompts (default: on)",
        )
        t.add_argument("--wordnet-dir", default=None, help="WordNet 3.0 folder (/usr/share/wordnet)")
        t.add_argument(
            "--locoop",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="also train LoCoOp (stage 1 with its OOD regularisation; default: on)",
        )
        for k in (1, 2):
            t.add_argument(
                f"--stage{k}",
                type=_key_value,
                action="append",
                default=None,
                metavar="KEY=VALUE",
                help=f"a training setting of stage {k} only, e.g. epochs=20 (repeatable)",
            )
    t.add_argument(
        "--threads",
        type=int,
        default=1 if demo else 0,
        help="CPU threads of PyTorch; 0 = PyTorch's default "
        + ("(1: steady on a 2-core machine even when other programs are busy)" if demo else "(0)"),
    )
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=None, help="run directory to write")
    o.add_argument("--unique", action="store_true", help="if --out exists, write --out-2, -3 … instead")
    o.add_argument("--resume", action="store_true", help="continue the interrupted run of --out")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_backbone_args(p)
    p.set_defaults(model=None)
    for action in p._actions:  # the model's default depends on the preset
        if action.dest == "model":
            action.help = (
                "open_clip architecture or hf-hub:org/repo (default: negprompt-mini for the demo and the mini "
                "presets, else ViT-B-16)"
            )


def register(sub) -> None:
    p = sub.add_parser(
        "run",
        help="the paper's experiments end to end (conventional, hard-ood, open-vocab, demo)",
        description="Run an experiment preset end to end: cached image features, CoOp positive prompts "
        "(stage 1), NegPrompt negative prompts (stage 2), and the baselines zero-shot MCM and CoOp + MCM "
        "beside NegPrompt on every OOD set. Prints a paper-shaped table and writes a run directory.",
    )
    p.add_argument("preset", choices=PRESET_CHOICES, help="the experiment")
    add_experiment_args(p)
    p.set_defaults(func=run)


def config_from_args(preset: str, args: argparse.Namespace, **forced):
    """The :class:`ExperimentConfig` of ``preset`` with every option given on the command line."""
    from negprompt.experiments import ExperimentConfig

    get = lambda name: getattr(args, name, None)  # noqa: E731
    values = {
        "data_root": get("data_root"),
        "protocol": get("protocol"),
        "ood_sets": get("ood_sets"),
        "classes": get("classes"),
        "id_classes": get("id_classes"),
        "open_vocab_fraction": get("fraction"),
        "open_vocab_mode": get("class_choice"),
        "open_vocab_seed": get("class_seed"),
        "model": get("model"),
        "pretrained": get("pretrained"),
        "device": get("device"),
        "precision": get("precision"),
        "val_per_class": get("val_per_class"),
        "seed": get("seed"),
        "n_views": get("n_views"),
        "n_neg": get("n_neg"),
        "neg_noise": get("neg_noise"),
        "train_preset": get("train_preset"),
        "select": get("select"),
        "temperature": get("temperature"),
        "batch_size": get("batch_size"),
        "cache_dir": get("cache_dir"),
        "neglabel": get("neglabel"),
        "local_scores": get("local_scores"),
        "wordnet_dir": get("wordnet_dir"),
        "locoop": get("locoop"),
    }
    values = {k: v for k, v in values.items() if v is not None}
    if "open_vocab_seed" in values and "open_vocab_mode" not in values:
        values["open_vocab_mode"] = "random"  # a seed asks for a random choice
    if hasattr(args, "shots"):  # None means all images ("--shots all")
        values["shots"] = args.shots
    benchmark = get("benchmark")
    if get("full") and get("cifar"):
        raise ValueError("--full and --cifar exclude each other")
    if get("full"):
        benchmark = "demo-full"
    elif get("cifar"):
        benchmark = f"cifar{get('cifar')}"
    if benchmark is not None:
        values["benchmark"] = benchmark
    train = {
        k: v
        for k, v in {
            "epochs": get("epochs"),
            "lr": get("lr"),
            "batch_size": get("train_batch_size"),
            "class_subset_size": get("class_subset_size"),
            "img_loss": get("img_loss"),
        }.items()
        if v is not None
    }
    if train:
        values["train"] = train
    for k in (1, 2):
        if get(f"stage{k}"):
            values[f"stage{k}"] = dict(get(f"stage{k}"))
    values.update(forced)
    return ExperimentConfig.for_preset(preset, **values)


def set_threads(threads: int, device: str) -> None:
    """Use ``threads`` CPU threads for PyTorch (0: leave its default) when running on the CPU."""
    import torch

    if threads < 0:
        raise ValueError(f"--threads must be >= 0, got {threads}")
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if threads and on_cpu:
        torch.set_num_threads(threads)


def execute(config, out: Path, args: argparse.Namespace) -> Path:
    """Run ``config`` into ``out``, print the table; clear errors for the usual failures."""
    from negprompt.cli import UserError
    from negprompt.commands.common import check_outputs
    from negprompt.data import DownloadError
    from negprompt.evaluate import format_table
    from negprompt.experiments import run_experiment, work_dir_for
    from negprompt.rundir import load_run
    from negprompt.train import NonFiniteLossError

    set_threads(getattr(args, "threads", 0), config.device)
    check_outputs(Path(out).expanduser().absolute().parent)  # before any long work
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
    run = load_run(path)
    warning = run.config["backbone"].get("warning")
    banner = f"\n!!! {warning}\n" if warning else ""
    print(banner + format_table(run.metrics))
    hardest = hardest_ood_classes(run.scores)
    if hardest:
        print(hardest)
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


def seeds_of(args: argparse.Namespace) -> list[int] | None:
    """The seeds of a multi-seed run, or None for one run (``--seed``, or a non-mini preset)."""
    from negprompt.experiments.config import MINI_SEEDS, PRESET_KIND

    if args.seeds is not None and args.seed is not None:
        raise ValueError("give --seed (one run) or --seeds (one run per seed), not both")
    if args.seeds is not None:
        if len(set(args.seeds)) != len(args.seeds):
            raise ValueError(f"--seeds lists a seed twice: {args.seeds}")
        return list(args.seeds)
    if args.seed is None and args.preset in PRESET_KIND:
        return list(MINI_SEEDS)
    return None


def run_seeds(args: argparse.Namespace, seeds: list[int], out: Path) -> Path:
    """One run per seed under ``out/seed-<k>``, then ``summary.csv`` / ``summary.md`` in ``out``."""
    from negprompt.experiments.seeds import format_summary, summarize
    from negprompt.io import atomic_write
    from negprompt.rundir import load_run

    metrics = {}
    for seed in seeds:
        print(f"== seed {seed} ({seeds.index(seed) + 1} of {len(seeds)})", flush=True)
        config = config_from_args(args.preset, args, seed=seed)
        path = execute(config, out / f"seed-{seed}", args)
        metrics[seed] = load_run(path).metrics
    summary = summarize(metrics)
    table = format_summary(summary)
    atomic_write(out / "summary.csv", summary.to_csv(index=False))
    atomic_write(out / "summary.md", f"# {args.preset}: mean ± std over seeds {seeds}\n\n{table}\n")
    print(f"\nmean ± std over seeds {seeds} (percent):\n{table}\nsummary: {out / 'summary.md'}")
    return out


def run(args: argparse.Namespace) -> int:
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out: the run directory of the interrupted run")
    seeds = seeds_of(args)
    out = args.out or default_run_dir(args.preset)
    if seeds is not None:
        run_seeds(args, seeds, out)
        return 0
    config = config_from_args(args.preset, args)
    execute(config, out, args)
    return 0
