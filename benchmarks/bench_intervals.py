"""What bootstrap intervals add to an evaluation: the demo with the mini-CLIP, and ImageNet's sizes.

python -m benchmarks.bench_intervals --out benchmarks/results-intervals-cpu.json
python -m benchmarks.bench_intervals --skip-demo --id-images 50000 --ood-images 10000 --sets 4

* ``demo``: the demo experiment (features cached, both stages trained), then ``Experiment.evaluate()``
  timed with its intervals (1,000 resamples, every row and set): once as a run does it (the zero-shot
  prompts encoded and the local GL-MCM scores computed) and again with those kept; and the interval
  step alone (`negprompt.evaluate.with_intervals` on the same scores). The overhead is the interval
  step's share of the rest of the evaluation.
* ``synthetic``: a scores table of ImageNet's test sizes (50,000 ID images, four OOD sets of 10,000,
  20 score columns): the point metrics alone against points plus intervals. Scoring itself (features
  × text features) is not included there, so the ratio is an upper bound of the overhead.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from benchmarks.common import environment


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def demo(repeats: int = 3) -> dict:
    """``Experiment.evaluate()`` of the demo and the share of it spent on intervals."""
    from negprompt.evaluate import with_intervals
    from negprompt.experiments import Experiment, ExperimentConfig

    exp = Experiment(ExperimentConfig.for_preset("demo"), progress=False)
    exp.prepare()
    exp.train()
    cold = _best(exp.evaluate, 1)  # what a run pays: prompts encoded, local scores computed
    warm = _best(exp.evaluate, repeats)  # again, with the encoded prompts and local scores kept
    ev = exp.evaluation
    base = ev.metrics[list(ev.metrics.columns[:8])]
    intervals = _best(lambda: with_intervals(base, ev.scores, exp.config.bootstrap()), repeats)
    rows = len({(m, s) for m, s in zip(ev.metrics["method"], ev.metrics["score"])})
    return {
        "images": len(ev.scores),
        "rows": rows,
        "sets": int(ev.metrics["dataset"].nunique() - 1),
        "resamples": exp.config.evaluation.bootstrap,
        "evaluate_s": cold,
        "evaluate_again_s": warm,
        "intervals_s": intervals,
        "overhead": intervals / (cold - intervals),
        "overhead_again": intervals / (warm - intervals),
    }


def synthetic(id_images: int, ood_images: int, sets: int, columns: int, resamples: int) -> dict:
    """Point metrics vs points plus intervals on a synthetic scores table of the given sizes."""
    import torch

    from negprompt.evaluate import Method, metrics_table
    from negprompt.uncertainty import Bootstrap

    rng = np.random.default_rng(0)
    n = id_images + sets * ood_images
    is_id = np.r_[np.ones(id_images, bool), np.zeros(sets * ood_images, bool)]
    table = pd.DataFrame(
        {
            "dataset": ["id"] * id_images + [f"ood{k}" for k in range(sets) for _ in range(ood_images)],
            "split": np.where(is_id, "id", "ood"),
            "path": [f"img{i}" for i in range(n)],
            "label": np.where(is_id, rng.integers(0, 1000, n), -1),
        }
    )
    methods = [Method(f"m{k}", torch.zeros(1, 1)) for k in range(columns // 5)]
    for method in methods:
        table[f"pred.{method.name}"] = np.where(is_id, table["label"], 0)
        for s in range(5):
            table[f"{method.name}/s{s}"] = rng.normal(0, 1, n) + is_id * rng.uniform(0.5, 2)
    points = _best(lambda: metrics_table(table, methods, None), 1)
    bs = Bootstrap(n_resamples=resamples)
    both = _best(lambda: metrics_table(table, methods, bs), 1)
    return {
        "id_images": id_images,
        "ood_images_per_set": ood_images,
        "sets": sets,
        "rows": len(methods) * 5,
        "resamples": resamples,
        "points_s": points,
        "points_and_intervals_s": both,
        "intervals_s_per_row_and_set": (both - points) / (len(methods) * 5 * sets),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--id-images", type=int, default=50000)
    ap.add_argument("--ood-images", type=int, default=10000)
    ap.add_argument("--sets", type=int, default=4)
    ap.add_argument("--columns", type=int, default=20)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    import torch

    result = {"environment": environment(torch.device("cpu"))}
    if not args.skip_demo:
        result["demo"] = demo(args.repeats)
        print(json.dumps(result["demo"], indent=1), flush=True)
    if not args.skip_synthetic:
        result["synthetic"] = synthetic(
            args.id_images, args.ood_images, args.sets, args.columns, args.resamples
        )
        print(json.dumps(result["synthetic"], indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
