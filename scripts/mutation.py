"""Mutation testing of the core modules with mutmut, one module at a time (run by scripts/mutation.sh).

For each module a scratch copy of the package and the tests is made under ``.mutation/<module>/``
with a ``[tool.mutmut]`` section that mutates only that module's files and runs only its test
files; mutmut then plants one bug at a time (a changed operator, constant, argument, ...) and runs
the tests that reach the mutated function. A mutant is *killed* when a test fails.

    mutation score = killed / (killed + survived + no_tests + timeout + suspicious)

The summary goes to ``.mutation/<module>/summary.json`` and the surviving mutants to
``.mutation/<module>/survivors.txt`` (``mutmut show NAME`` in that folder prints a diff).

``--keep`` adds to the module's last run (another glob of names, for a module too large for one
sitting); after new tests, ``--survivors`` reruns only the last run's survivors. Both reuse the
scratch folder (the package and the tests are copied afresh; mutmut keeps the verdicts of the
other mutants, and of every mutant of a function whose code did not change).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module -> (files to mutate, test files that cover them)
TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "metrics": (
        ["negprompt/metrics.py"],
        ["tests/metrics/test_metrics.py", "tests/project/test_mutation_kills.py"],
    ),
    "scores": (
        ["negprompt/scores.py"],
        ["tests/scores/test_scores.py", "tests/project/test_mutation_kills.py"],
    ),
    "losses": (
        ["negprompt/losses.py"],
        ["tests/losses/test_losses.py", "tests/project/test_mutation_kills.py"],
    ),
    "prompts": (
        ["negprompt/prompts.py"],
        [
            "tests/prompts/test_prompts.py",
            "tests/prompts/test_promptfile.py",
            "tests/prompts/test_prompts_reference.py",
            "tests/prompts/test_prompts_inputs.py",
        ],
    ),
    "features": (
        ["negprompt/features.py"],
        [
            "tests/features/test_features.py",
            "tests/features/test_features_cache.py",
            "tests/features/test_cache_identity.py",
        ],
    ),
    "train": (
        ["negprompt/train/*"],
        [
            "tests/train/test_train.py",
            "tests/train/test_train_checkpoint.py",
            "tests/train/test_train_inputs.py",
            "tests/train/test_train_sources.py",
            "tests/train/test_train_resume_checks.py",
            "tests/train/test_train_settings.py",
            "tests/methods/test_locoop.py",
        ],
    ),
    "backbone": (
        ["negprompt/backbone.py", "negprompt/weights.py"],
        [
            "tests/backbone/test_backbone.py",
            "tests/backbone/test_weights_probe.py",
            "tests/backbone/test_backbone_transforms.py",
            "tests/features/test_cache_identity.py",
        ],
    ),
    "config": (
        ["negprompt/experiments/config.py", "negprompt/commands/options.py", "negprompt/defaults.py"],
        ["tests/experiments/test_config_sections.py"],
    ),
    "rundir": (
        ["negprompt/rundir/*"],
        ["tests/rundir/test_rundir.py", "tests/rundir/test_rundir_contract.py"],
    ),
}


# module -> extra pytest arguments: the ViT-B/16 variants of the prompt tests run the same code as
# their tiny-model twins and only make each mutant slower (deselecting can only lower the score)
PYTEST_EXTRA: dict[str, list[str]] = {"prompts": ["-k", "not vit_b16"]}


def mutmut_section(module: str) -> str:
    """The ``[tool.mutmut]`` TOML section for one module."""
    files, tests = TARGETS[module]
    pytest_args = ["-p", "no:cacheprovider", "-q", "-o", "addopts=", *PYTEST_EXTRA.get(module, [])]
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["negprompt"]\n'
        f"only_mutate = {json.dumps(files)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        f"pytest_add_cli_args = {json.dumps(pytest_args)}\n"
    )


def prepare(module: str, keep: bool = False) -> Path:
    """The scratch folder with the package, the tests and the module's mutmut configuration.

    A fresh one, or with ``keep`` the existing one with the package and tests copied afresh (mutmut
    keeps the verdicts of mutants whose function did not change).
    """
    scratch = ROOT / ".mutation" / module
    if keep:
        for folder in ("negprompt", "tests"):
            shutil.rmtree(scratch / folder, ignore_errors=True)
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "_artifacts")
    shutil.copytree(ROOT / "negprompt", scratch / "negprompt", ignore=ignore)
    shutil.copytree(ROOT / "tests", scratch / "tests", ignore=ignore)
    pyproject = (ROOT / "pyproject.toml").read_text()
    pyproject = re.sub(r"\n\[tool\.mutmut\]\n(?:[^\[].*\n|\n)*", "\n", pyproject)
    (scratch / "pyproject.toml").write_text(pyproject + mutmut_section(module))
    return scratch


def summarise(scratch: Path, python: str, env: dict) -> dict:
    """Counts from ``mutmut export-cicd-stats`` plus the score and the surviving mutant names."""
    subprocess.run([python, "-m", "mutmut", "export-cicd-stats"], cwd=scratch, env=env, check=True)
    stats = json.loads((scratch / "mutants" / "mutmut-cicd-stats.json").read_text())
    results = subprocess.run(
        [python, "-m", "mutmut", "results"], cwd=scratch, env=env, capture_output=True, text=True, check=True
    ).stdout
    survivors = [  # not killed: survived, or reached by no test
        line.split(":")[0].strip()
        for line in results.splitlines()
        if line.rstrip().endswith(("survived", "no tests"))
    ]
    tested = sum(stats[k] for k in ("killed", "survived", "no_tests", "timeout", "suspicious"))
    stats["tested"] = tested
    stats["score"] = round(stats["killed"] / tested, 4) if tested else None
    (scratch / "survivors.txt").write_text("".join(f"{name}\n" for name in survivors))
    (scratch / "summary.json").write_text(json.dumps(stats, indent=2))
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=[*TARGETS, "all"])
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutant runs (default 1)")
    parser.add_argument(
        "names", nargs="*", help="only mutants whose name matches, e.g. 'negprompt.train.config*'"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="add to the module's last run (e.g. another glob of names) instead of starting afresh",
    )
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="rerun only the survivors of the module's last run (after adding tests); implies --keep",
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="only write the summary of the module's last run (e.g. one stopped by hand)",
    )
    args = parser.parse_intermixed_args(argv)
    python = os.environ.get("PYTHON", sys.executable)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), HF_HUB_OFFLINE="1")
    # the mutated copy must be the only negprompt on the path: drop this checkout from PYTHONPATH
    keep = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT]
    env["PYTHONPATH"] = os.pathsep.join(keep)
    modules = list(TARGETS) if args.module == "all" else [args.module]
    failed = []
    for module in modules:
        if args.summary:
            stats = summarise(ROOT / ".mutation" / module, python, env)
            print(f"== {module}: {stats['killed']} of {stats['tested']} killed, score {stats['score']}")
            continue
        names = list(args.names)
        if args.survivors:
            listed = ROOT / ".mutation" / module / "survivors.txt"
            if not listed.is_file():
                print(f"no survivors.txt for {module}: run it once without --survivors", file=sys.stderr)
                failed.append(module)
                continue
            names += listed.read_text().split()
            if not names:
                print(f"== {module}: no survivors to rerun", flush=True)
                continue
        scratch = prepare(module, keep=args.keep or args.survivors)
        print(f"== mutation testing {module} in {scratch.relative_to(ROOT)}", flush=True)
        run = subprocess.run(
            [python, "-m", "mutmut", "run", "--max-children", str(args.max_children), *names],
            cwd=scratch,
            env=env,
        )
        if run.returncode:
            failed.append(module)
            continue
        stats = summarise(scratch, python, env)
        print(
            f"== {module}: {stats['killed']} of {stats['tested']} killed, score {stats['score']}", flush=True
        )
    if failed:
        print(f"mutmut failed for: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
