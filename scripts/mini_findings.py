#!/usr/bin/env python
"""The mini-world studies of docs/findings.md: every run, over seeds, as one JSON file.

    python scripts/mini_findings.py --out runs/findings --json benchmarks/findings-mini.json

Runs (each over ``--seeds``, default 0 1 2; results are resumed from finished run directories):

* ``main``: mini-conventional (far OOD) and mini-hard-ood (near OOD) at the defaults;
* ``negatives``: mini-hard-ood and mini-conventional for M = 1, 2, 4 negative contexts and initial
  noise 1e-3, 0.1, 1.0 (× the context's std);
* ``temperature``: the score temperature T re-applied to the saved features of the ``main`` runs;
* ``open_vocab``: mini-open-vocab with prompts learned on 20%, 50% and 80% of the 10 classes.

Nothing here is tuned: every run uses the presets' recipe, and the JSON records every number.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from negprompt import metrics, scores
from negprompt.experiments import ExperimentConfig, run_experiment
from negprompt.rundir import load_run

NEGATIVES = [(1, 1e-3), (2, 1e-3), (2, 0.1), (2, 1.0), (4, 1e-3), (4, 0.1), (4, 1.0)]
FRACTIONS = (0.2, 0.5, 0.8)
TEMPERATURES = (0.01, 0.1, 1.0, 10.0)


def run(out: Path, preset: str, seed: int, **overrides) -> Path:
    """A finished run directory for ``preset`` (reused when it is already there)."""
    name = "-".join([preset, f"s{seed}"] + [f"{k}{v}" for k, v in sorted(overrides.items())])
    path = out / name
    if (path / "metrics.csv").exists():
        return path
    config = ExperimentConfig.for_preset(preset, seed=seed, cache_dir=None, **overrides)
    return run_experiment(config, path, resume=(out / f".{name}.work").exists(), progress=False)


def rows(path: Path) -> list[dict]:
    """The run's mean-over-OOD-sets rows and each OOD set's rows."""
    m = load_run(path).metrics
    return m[["method", "score", "dataset", "fpr95", "auroc", "id_acc"]].to_dict("records")


def negative_similarity(path: Path) -> float | None:
    """Mean cosine between the M negative prompt features of each class (None for M = 1)."""
    run_ = load_run(path)
    _, neg = run_.text_features_of("negprompt")
    if neg is None or neg.ndim != 3 or neg.shape[1] < 2:
        return None
    neg = neg / np.linalg.norm(neg, axis=-1, keepdims=True)
    sims = np.einsum("cmd,cnd->cmn", neg, neg)
    m = neg.shape[1]
    return float(sims[:, ~np.eye(m, dtype=bool)].mean())


def temperature_rows(path: Path) -> list[dict]:
    """NegPrompt and CoOp + MCM FPR95 / AUROC of a run at each temperature (the run's own features)."""
    run_ = load_run(path)
    feats = np.asarray(run_.image_features, dtype=np.float32)
    split = run_.scores["split"].to_numpy()
    dataset = run_.scores["dataset"].to_numpy()
    out = []
    for method, score in (("negprompt", "negprompt"), ("coop", "mcm")):
        pos, neg = run_.text_features_of(method)
        for t in TEMPERATURES:
            _, s = scores.predict_and_score(score, feats, pos, neg if score == "negprompt" else None, t)
            s = s[score].numpy().astype(np.float64)
            id_s = s[split == "id"]
            for ds in sorted(set(dataset[split == "ood"])):
                ood_s = s[(split == "ood") & (dataset == ds)]
                out.append({"method": method, "temperature": t, "dataset": ds,
                            "fpr95": metrics.fpr_at_tpr(id_s, ood_s), "auroc": metrics.auroc(id_s, ood_s)})  # fmt: skip
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/findings"))
    ap.add_argument("--json", type=Path, default=Path("benchmarks/findings-mini.json"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--parts", nargs="+", default=["main", "negatives", "temperature", "open_vocab"])
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = json.loads(args.json.read_text()) if args.json.exists() else {}
    result["seeds"] = args.seeds

    def save() -> None:
        args.json.write_text(json.dumps(result, indent=1))

    for seed in args.seeds:
        if "main" in args.parts or "temperature" in args.parts:
            for preset in ("mini-conventional", "mini-hard-ood"):
                path = run(args.out, preset, seed)
                result.setdefault("main", {}).setdefault(preset, {})[str(seed)] = rows(path)
                if "temperature" in args.parts:
                    result.setdefault("temperature", {}).setdefault(preset, {})[str(seed)] = temperature_rows(
                        path
                    )
                save()
        if "negatives" in args.parts:
            for preset in ("mini-hard-ood", "mini-conventional"):
                for m, noise in NEGATIVES:
                    path = run(args.out, preset, seed, n_neg=m, neg_noise=noise)
                    entry = {"rows": rows(path), "neg_cos": negative_similarity(path)}
                    result.setdefault("negatives", {}).setdefault(preset, {}).setdefault(
                        f"M={m} noise={noise}", {}
                    )[str(seed)] = entry
                    save()
        if "open_vocab" in args.parts:
            for fraction in FRACTIONS:
                path = run(args.out, "mini-open-vocab", seed, open_vocab_fraction=fraction)
                result.setdefault("open_vocab", {}).setdefault(str(fraction), {})[str(seed)] = rows(path)
                save()
        print(f"seed {seed} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
