"""The whole leaderboard: every (method, score) row a run computed, with intervals, and its verdict.

The paper-shaped table (`negprompt.evaluate.format_table`) shows each method with its headline
score. The leaderboard shows every row, the training-free ones always, sortable by any metric; the
best training-free row is marked, and each trained row carries its difference to that row with a
paired interval (`negprompt.comparison`). `verdict` states in one line whether NegPrompt beats the
best training-free score; it is printed first, so that a loss is never below the fold.

pandas only: the dashboard and the notebooks import it without torch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from negprompt.metrics import FPR_CONVENTION
from negprompt.table_rows import HEADLINE, all_rows, is_training_free, row_kind, row_label

__all__ = [
    "LOWER_IS_BETTER",
    "SORTABLE",
    "format_leaderboard",
    "format_results",
    "has_intervals",
    "leaderboard",
    "verdict",
]

SORTABLE = ("fpr95", "auroc", "aupr_in", "aupr_out", "id_acc")
"""Metrics a leaderboard can be sorted by."""
LOWER_IS_BETTER = frozenset({"fpr95"})
"""Metrics where a lower value is better (sorted ascending)."""


def has_intervals(metrics: pd.DataFrame) -> bool:
    """Whether a metrics table carries bootstrap intervals (runs written before them do not)."""
    return (
        "fpr95_low" in metrics.columns and pd.to_numeric(metrics["fpr95_low"], errors="coerce").notna().any()
    )


def _num(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


def leaderboard(metrics: pd.DataFrame, dataset: str = "mean", sort_by: str = "fpr95") -> pd.DataFrame:
    """Every (method, score) row of one dataset (an OOD set or ``mean``), best first by ``sort_by``.

    Returns:
        Columns ``row`` (display name), ``method``, ``score``, ``kind`` (trained / training-free /
        adapts on the test stream), ``best_training_free`` (True on the reference row), then each
        metric with ``_low`` / ``_high`` (fractions; NaN where the run has no interval) and the
        trained rows' differences ``d_fpr95``, ``d_auroc``, ``d_id_acc`` with their intervals.
    """
    if sort_by not in SORTABLE:
        raise ValueError(f"cannot sort by {sort_by!r}; choose one of {list(SORTABLE)}")
    rows = metrics[metrics["dataset"] == dataset]
    if rows.empty:
        known = list(dict.fromkeys(metrics["dataset"]))
        raise ValueError(f"no rows for dataset {dataset!r}; the metrics have {known}")
    out = pd.DataFrame(
        {
            "row": [row_label(m, s) for m, s in zip(rows["method"], rows["score"])],
            "method": rows["method"].to_numpy(),
            "score": rows["score"].to_numpy(),
            "kind": [row_kind(m) for m in rows["method"]],
        }
    )
    for metric in SORTABLE:
        for suffix in ("", "_low", "_high"):
            out[metric + suffix] = _num(rows, metric + suffix).to_numpy()
    for metric in ("fpr95", "auroc", "id_acc"):
        for suffix in ("", "_low", "_high"):
            out[f"d_{metric}{suffix}"] = _num(rows, f"d_{metric}{suffix}").to_numpy()
    ref = rows["ref_fpr95"].iloc[0] if "ref_fpr95" in rows.columns and rows["ref_fpr95"].notna().any() else ""
    if not isinstance(ref, str) or not ref:
        from negprompt.comparison import best_training_free

        found = best_training_free(metrics, "fpr95")
        ref = "/".join(found) if found else ""
    out["best_training_free"] = [f"{m}/{s}" == ref for m, s in zip(out["method"], out["score"])]
    ascending = sort_by in LOWER_IS_BETTER
    out = out.sort_values(sort_by, ascending=ascending, kind="stable", na_position="last")
    return out.reset_index(drop=True)


def _pct(value: float, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}"


def _span(low: float, high: float, signed: bool = False) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    fmt = "{:+.2f}" if signed else "{:.2f}"
    return f"[{fmt.format(100 * low)}, {fmt.format(100 * high)}]"


def format_leaderboard(
    metrics: pd.DataFrame, dataset: str = "mean", sort_by: str = "fpr95", level: float = 0.95
) -> str:
    """The leaderboard of one dataset as plain text (values in %, intervals in brackets)."""
    board = leaderboard(metrics, dataset, sort_by)
    where = "mean over OOD sets" if dataset == "mean" else dataset
    pct = f"{round(100 * level)}%"
    lines = [
        f"whole leaderboard, {where}, sorted by {sort_by} ({pct} bootstrap intervals; * best training-free row; "
        "Δ = row − best training-free, paired interval)",
        f"{'':2}{'row':30}{'kind':>15}{'FPR95':>8} {'interval':16}{'AUROC':>8} {'interval':16}"
        f"{'ID acc':>8}   {'Δ FPR95 pp':>11} {'interval':17}",
    ]
    for r in board.itertuples(index=False):
        mark = "* " if r.best_training_free else "  "
        kind = {"training-free": "training-free", "trained": "trained"}.get(r.kind, "test-adaptive")
        delta = "" if not math.isfinite(r.d_fpr95) else f"{100 * r.d_fpr95:+.2f}"
        dspan = "" if not math.isfinite(r.d_fpr95) else _span(r.d_fpr95_low, r.d_fpr95_high, signed=True)
        lines.append(
            f"{mark}{r.row[:29]:30}{kind:>15}{_pct(r.fpr95):>8} {_span(r.fpr95_low, r.fpr95_high):16}"
            f"{_pct(r.auroc):>8} {_span(r.auroc_low, r.auroc_high):16}{_pct(r.id_acc):>8}   "
            f"{delta:>11} {dspan:17}".rstrip()
        )
    lines.append(f"({FPR_CONVENTION}; all values in %; mean = average of the per-set metrics)")
    return "\n".join(lines)


def _headline_trained(metrics: pd.DataFrame) -> tuple[str, str] | None:
    rows = all_rows(metrics)
    if ("negprompt", "negprompt") in rows:
        return "negprompt", "negprompt"
    for method, score in rows:
        if not is_training_free(method) and HEADLINE.get(method) == score:
            return method, score
    return None


def verdict(metrics: pd.DataFrame, level: float = 0.95) -> str:
    """One line: does the run's trained method (NegPrompt when present) beat the best training-free
    score on the mean FPR95, judged by the paired interval of the difference?"""
    mean = metrics[metrics["dataset"] == "mean"]
    if mean.empty or _num(mean, "fpr95").isna().all():
        return "No OOD set in this run: only the ID accuracy is measured."
    from negprompt.comparison import best_training_free

    ref = best_training_free(metrics, "fpr95")
    trained = _headline_trained(metrics)
    if ref is None:
        return "No training-free row in this run: nothing to judge the trained methods against."
    r = mean[(mean["method"] == ref[0]) & (mean["score"] == ref[1])].iloc[0]
    ref_text = f"{row_label(*ref)} (FPR95 {_pct(float(r['fpr95']))}%)"
    if trained is None:
        return f"Training-free methods only; the best by mean FPR95 is {ref_text}."
    t = mean[(mean["method"] == trained[0]) & (mean["score"] == trained[1])].iloc[0]
    name = row_label(*trained)
    d = float(pd.to_numeric(t.get("d_fpr95", np.nan), errors="coerce"))
    low = float(pd.to_numeric(t.get("d_fpr95_low", np.nan), errors="coerce"))
    high = float(pd.to_numeric(t.get("d_fpr95_high", np.nan), errors="coerce"))
    head = f"{name} FPR95 {_pct(float(t['fpr95']))}% vs the best training-free score, {ref_text}"
    if not (math.isfinite(low) and math.isfinite(high)):
        diff = float(t["fpr95"]) - float(r["fpr95"])
        word = "worse" if diff > 0 else "better" if diff < 0 else "equal"
        return f"{head}: {name} is {word} by {abs(100 * diff):.2f} pp (no interval: a run without bootstrap)."
    span = f"Δ {100 * d:+.2f} pp, {round(100 * level)}% CI [{100 * low:+.2f}, {100 * high:+.2f}]"
    if low > 0:
        return f"{name} LOSES to a training-free score: {head} ({span})."
    if high < 0:
        return f"{name} beats the best training-free score: {head} ({span})."
    return f"{name} and the best training-free score cannot be told apart: {head} ({span}, includes 0)."


def format_results(metrics: pd.DataFrame, level: float = 0.95) -> str:
    """The console results: the verdict first, the whole leaderboard (mean over OOD sets) and the
    paper-shaped table of the headline rows per OOD set."""
    from negprompt.evaluate import format_table

    text = verdict(metrics, level) + "\n\n"
    if pd.to_numeric(metrics["fpr95"], errors="coerce").notna().any():
        text += format_leaderboard(metrics, level=level) + "\n\npaper-shaped table (headline rows):\n"
    return text + format_table(metrics)
