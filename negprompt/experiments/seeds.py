"""Results over several seeds: one run directory per seed, their mean ± standard deviation, and the
pooled interval of the mean.

Differences between methods in the mini-world are often a point or two, which is the size of the
spread between seeds and of the test-set noise; a table of one seed would tell a story the next
seed, or the next draw of test images, takes back. So the summary gives, for every row:

- mean ± sample standard deviation over seeds, with n (no ± for a single seed);
- the *pooled* interval of the mean: in every bootstrap resample of the test images (the same
  resample for every seed when they share their test images), the metric is averaged over seeds;
  the percentile interval of that average covers the test-set noise of the seed-mean;
- for each trained row, the difference of its seed-mean to the best training-free row's, with its
  pooled paired interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from negprompt import comparison as C
from negprompt import uncertainty as U
from negprompt.table_rows import all_rows, is_training_free, row_label

METRICS: tuple[str, ...] = ("fpr95", "auroc", "aupr_in", "aupr_out", "id_acc")
KEYS: tuple[str, ...] = ("method", "score", "dataset")


def summarize(
    metrics: Mapping[int, pd.DataFrame],
    scores: Mapping[int, pd.DataFrame] | None = None,
    bootstrap: U.Bootstrap | None = None,
) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof=1; NaN for one seed) of every metric over seeds,
    and, given the per-image ``scores``, pooled intervals of the means and the trained rows'
    paired differences to the best training-free row.

    Args:
        metrics: seed -> the run's ``metrics.csv`` as a frame.
        scores: seed -> the run's ``scores.parquet`` (None: no intervals).
        bootstrap: resamples, level and seed of the intervals (default 1,000 at 95%).

    Returns:
        One row per (method, score, dataset) in first-seen order, columns ``<metric>_mean``,
        ``<metric>_std``, ``seeds`` (how many seeds had the row), and with ``scores``
        ``<metric>_low`` / ``<metric>_high`` and ``ref`` / ``d_fpr95`` / ``d_fpr95_low`` /
        ``d_fpr95_high`` (against the best training-free row of the seed-means).
    """
    if not metrics:
        raise ValueError("no runs to summarize")
    frames = [df.assign(seed=seed) for seed, df in metrics.items()]
    both = pd.concat(frames, ignore_index=True)
    present = [m for m in METRICS if m in both.columns]
    for m in present:
        both[m] = pd.to_numeric(both[m], errors="coerce")
    grouped = both.groupby(list(KEYS), sort=False)[present]
    mean = grouped.mean().add_suffix("_mean")
    std = grouped.std(ddof=1).add_suffix("_std")
    count = both.groupby(list(KEYS), sort=False)["seed"].nunique().rename("seeds")
    summary = pd.concat([mean, std, count], axis=1).reset_index()
    if scores is None:
        return summary
    return _with_pooled_intervals(summary, metrics, scores, bootstrap or U.Bootstrap())


def _pooled_draws(
    metrics: Mapping[int, pd.DataFrame], scores: Mapping[int, pd.DataFrame], bootstrap: U.Bootstrap
):
    """Per row: the seed-mean of every metric in every resample, ``{(method, score): {set: {metric: [B]}}}``."""
    per_seed = {}
    for seed, table in scores.items():
        resamples = C.table_resamples(table, bootstrap)  # same sizes: the same resamples for every seed
        per_seed[seed] = {row: C.row_draws(table, *row, resamples) for row in all_rows(metrics[seed])}
    rows = [r for r in all_rows(next(iter(metrics.values()))) if all(r in d for d in per_seed.values())]
    pooled = {}
    for row in rows:
        sets = set.intersection(*(set(d[row]) for d in per_seed.values()))
        pooled[row] = {
            s: {
                m: np.mean([d[row][s][m] for d in per_seed.values()], axis=0)
                for m in next(iter(per_seed.values()))[row][s]
            }
            for s in sets
        }
    return pooled


def _with_pooled_intervals(summary, metrics, scores, bootstrap) -> pd.DataFrame:
    pooled = _pooled_draws(metrics, scores, bootstrap)
    alpha = 1.0 - bootstrap.level
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    means = summary.rename(columns={f"{m}_mean": m for m in METRICS})
    ref = C.best_training_free(means, "fpr95")
    extra = []
    for r in summary.itertuples(index=False):
        draws = pooled.get((r.method, r.score), {}).get(r.dataset, {})
        record = {k: getattr(r, k) for k in KEYS}
        for m in METRICS:
            low, high = np.percentile(draws[m], q) if m in draws else (np.nan, np.nan)
            record[f"{m}_low"], record[f"{m}_high"] = low, high
        record["ref"] = "/".join(ref) if ref else ""
        d = low = high = np.nan
        if ref is not None and not is_training_free(r.method) and r.dataset in pooled.get(ref, {}) and draws:
            diff = draws["fpr95"] - pooled[ref][r.dataset]["fpr95"]
            ref_mean = summary[
                (summary.method == ref[0]) & (summary.score == ref[1]) & (summary.dataset == r.dataset)
            ]["fpr95_mean"].iloc[0]
            d = r.fpr95_mean - ref_mean
            low, high = np.percentile(diff, q)
        record["d_fpr95"], record["d_fpr95_low"], record["d_fpr95_high"] = d, low, high
        extra.append(record)
    return summary.merge(pd.DataFrame(extra), on=list(KEYS), how="left")


def _cell(row: dict, metric: str) -> str:
    value = 100 * row[f"{metric}_mean"]
    if not math.isfinite(value):
        return "—"
    text = f"{value:.2f}"
    std = row.get(f"{metric}_std", math.nan)
    if row["seeds"] > 1 and math.isfinite(std):
        text += f" ± {100 * std:.2f}"
    low, high = row.get(f"{metric}_low", math.nan), row.get(f"{metric}_high", math.nan)
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{100 * low:.2f}, {100 * high:.2f}]"
    return text


def seeds_verdict(summary: pd.DataFrame, level: float = 0.95) -> str:
    """One line: NegPrompt's seed-mean FPR95 (mean over OOD sets) against the best training-free row's."""
    row = summary[
        (summary.method == "negprompt") & (summary.score == "negprompt") & (summary.dataset == "mean")
    ]
    if row.empty or "d_fpr95" not in summary.columns or row["ref"].iloc[0] in ("", None):
        return "No NegPrompt row or no intervals: see the table."
    r = row.iloc[0]
    ref = str(r["ref"])
    ref_row = summary[(summary.method + "/" + summary.score == ref) & (summary.dataset == "mean")].iloc[0]
    name = row_label(*ref.split("/", 1))
    head = (
        f"NegPrompt mean FPR95 {100 * r.fpr95_mean:.2f}% vs {name} {100 * ref_row.fpr95_mean:.2f}% "
        f"(n = {int(r.seeds)} seeds; Δ {100 * r.d_fpr95:+.2f} pp, pooled {round(100 * level)}% CI "
        f"[{100 * r.d_fpr95_low:+.2f}, {100 * r.d_fpr95_high:+.2f}])"
    )
    if r.d_fpr95_low > 0:
        return f"NegPrompt LOSES to a training-free score over seeds: {head}."
    if r.d_fpr95_high < 0:
        return f"NegPrompt beats the best training-free score over seeds: {head}."
    return f"NegPrompt and the best training-free score cannot be told apart over seeds: {head}."


def format_summary(summary: pd.DataFrame, metrics: tuple[str, ...] = ("fpr95", "auroc", "id_acc")) -> str:
    """A Markdown table of ``mean ± sd [pooled interval]`` in percent, n = seeds (FPR95 lower is
    better, the others higher); trained rows add their Δ FPR95 to the best training-free row."""
    cols = [m for m in metrics if f"{m}_mean" in summary.columns]
    has_d = "d_fpr95" in summary.columns
    head = (
        "| row | dataset | "
        + " | ".join(cols)
        + (" | Δ FPR95 vs best training-free |" if has_d else " |")
        + " n |"
    )
    lines = [head, "|" + "---|" * (len(cols) + 3 + has_d)]
    for r in summary.itertuples(index=False):
        row = r._asdict()
        cells = [_cell(row, m) for m in cols]
        if has_d:
            d = row.get("d_fpr95", math.nan)
            cells.append(
                ""
                if not math.isfinite(d)
                else f"{100 * d:+.2f} [{100 * row['d_fpr95_low']:+.2f}, {100 * row['d_fpr95_high']:+.2f}]"
            )
        label = row_label(row["method"], row["score"])
        lines.append(f"| {label} | {row['dataset']} | " + " | ".join(cells) + f" | {row['seeds']} |")
    return "\n".join(lines)
