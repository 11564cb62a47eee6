"""Results over several seeds: one run directory per seed, and their mean ± standard deviation.

Differences between methods in the mini-world are often a point or two, which is the size of the
spread between seeds; a table of one seed would tell a story the next seed takes back.
"""

from __future__ import annotations

import pandas as pd

METRICS: tuple[str, ...] = ("fpr95", "auroc", "aupr_in", "aupr_out", "id_acc")
KEYS: tuple[str, ...] = ("method", "score", "dataset")


def summarize(metrics: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof=1; 0 for one seed) of every metric over seeds.

    Args:
        metrics: seed -> the run's ``metrics.csv`` as a frame (columns ``method, score, dataset`` and
            the metrics).

    Returns:
        One row per (method, score, dataset) in first-seen order, columns ``<metric>_mean``,
        ``<metric>_std`` and ``seeds`` (how many seeds had the row).
    """
    if not metrics:
        raise ValueError("no runs to summarize")
    frames = [df.assign(seed=seed) for seed, df in metrics.items()]
    both = pd.concat(frames, ignore_index=True)
    present = [m for m in METRICS if m in both.columns]
    grouped = both.groupby(list(KEYS), sort=False)[present]
    mean = grouped.mean().add_suffix("_mean")
    std = grouped.std(ddof=1).fillna(0.0).add_suffix("_std")
    count = both.groupby(list(KEYS), sort=False)["seed"].nunique().rename("seeds")
    return pd.concat([mean, std, count], axis=1).reset_index()


def format_summary(summary: pd.DataFrame, metrics: tuple[str, ...] = ("fpr95", "auroc", "id_acc")) -> str:
    """A Markdown table of ``mean ± std`` in percent (FPR95 lower is better, the others higher)."""
    cols = [m for m in metrics if f"{m}_mean" in summary.columns]
    head = "| method | score | dataset | " + " | ".join(cols) + " | seeds |"
    lines = [head, "|" + "---|" * (len(cols) + 4)]
    for r in summary.itertuples(index=False):
        row = r._asdict()
        cells = [f"{100 * row[f'{m}_mean']:.2f} ± {100 * row[f'{m}_std']:.2f}" for m in cols]
        lines.append(
            f"| {row['method']} | {row['score']} | {row['dataset']} | "
            + " | ".join(cells)
            + f" | {row['seeds']} |"
        )
    return "\n".join(lines)
