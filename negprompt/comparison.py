"""Intervals and paired comparisons of the (method, score) rows of a scores table.

Works on a run's per-image table (``scores.parquet``: columns ``dataset``, ``split``, ``label``,
``pred.<method>`` and ``<method>/<score>``), so that the evaluation, the notebooks and the dashboard
compute the same intervals the same way, for new runs and for runs written before intervals existed.
numpy and pandas only (the dashboard imports it without torch).

- `row_intervals`: the bootstrap interval of every metric of every row, per OOD set and for the
  mean over sets (`negprompt.uncertainty`);
- `paired_rows`: the difference between two rows on the same images, with its paired interval;
- `against_training_free`: each trained row's difference to the best training-free row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from negprompt import uncertainty as U
from negprompt.streams import id_scores, per_set_column
from negprompt.table_rows import is_training_free, row_label

__all__ = [
    "COMPARED",
    "INTERVAL_COLUMNS",
    "REFERENCE_COLUMNS",
    "against_training_free",
    "best_training_free",
    "paired_rows",
    "row_draws",
    "row_intervals",
    "table_resamples",
]

INTERVAL_COLUMNS = tuple(f"{m}_{end}" for m in U.INTERVAL_METRICS for end in ("low", "high"))
"""metrics.csv columns of the intervals: ``fpr95_low``, ``fpr95_high``, … ``id_acc_high``."""
COMPARED = ("fpr95", "auroc", "id_acc")
"""Metrics whose difference to the best training-free row is stored."""
REFERENCE_COLUMNS = ("ref_fpr95", "ref_auroc") + tuple(
    f"d_{m}{end}" for m in COMPARED for end in ("", "_low", "_high")
)
"""metrics.csv columns of the comparison with the best training-free row (see `against_training_free`)."""


def _sets(scores: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    is_id = (scores["split"] == "id").to_numpy()
    if not is_id.any():
        raise ValueError("the scores table has no ID image (split == 'id'); intervals need them")
    return is_id, list(dict.fromkeys(scores.loc[~is_id, "dataset"]))


def table_resamples(scores: pd.DataFrame, bootstrap: U.Bootstrap | None = None) -> list[np.ndarray]:
    """The resample counts of a scores table's ID images and each OOD set (`negprompt.uncertainty`)."""
    bootstrap = bootstrap or U.Bootstrap()
    is_id, ood_names = _sets(scores)
    sizes = [int(is_id.sum())] + [int(((scores["dataset"] == d) & ~is_id).sum()) for d in ood_names]
    return U.draw_resamples(sizes, bootstrap)


def _correct(scores: pd.DataFrame, method: str, is_id: np.ndarray) -> np.ndarray | None:
    column = f"pred.{method}"
    labels = scores.loc[is_id, "label"].to_numpy()
    if column not in scores.columns or (labels < 0).any():
        return None
    return scores.loc[is_id, column].to_numpy() == labels


def _row_scores(scores: pd.DataFrame, method: str, score: str) -> tuple[U.IdScores, dict[str, np.ndarray]]:
    """``(ID scores, {OOD set: scores})``; the ID scores per OOD set where the method read one stream per
    set (`negprompt.streams`)."""
    column = f"{method}/{score}"
    if column not in scores.columns:
        raise KeyError(f"the scores table has no column {column!r}")
    is_id, ood_names = _sets(scores)
    values = pd.to_numeric(scores[column], errors="raise").to_numpy(dtype=np.float64)
    oods = {d: values[(scores["dataset"] == d).to_numpy() & ~is_id] for d in ood_names}
    if any(per_set_column(method, score, d) in scores.columns for d in ood_names):
        return {d: id_scores(scores, method, score, d) for d in ood_names}, oods
    return values[is_id], oods


def row_draws(
    scores: pd.DataFrame,
    method: str,
    score: str,
    resamples: Sequence[np.ndarray],
) -> dict[str, dict[str, np.ndarray]]:
    """Every metric of one row in every resample: ``{set | "mean": {metric: [B]}}``."""
    id_scores, oods = _row_scores(scores, method, score)
    correct = _correct(scores, method, (scores["split"] == "id").to_numpy())
    return U.resampled_metrics(id_scores, oods, correct=correct, resamples=resamples)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    alpha = 1.0 - level
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def row_intervals(
    scores: pd.DataFrame,
    rows: Sequence[tuple[str, str]],
    bootstrap: U.Bootstrap | None = None,
    *,
    resamples: Sequence[np.ndarray] | None = None,
    draws: dict | None = None,
) -> pd.DataFrame:
    """The interval columns (`INTERVAL_COLUMNS`) of every (method, score, dataset) row.

    Args:
        scores: a run's per-image table.
        rows: the (method, score) pairs to cover.
        bootstrap: resamples, level and seed (default `negprompt.uncertainty.Bootstrap()`); every
            row uses the same resamples.
        resamples: the counts of `table_resamples` (drawn from ``bootstrap`` when None).
        draws: a dict filled with each row's resampled metrics (for `against_training_free`).

    Returns:
        Columns ``method, score, dataset`` and `INTERVAL_COLUMNS` (``id_acc_*`` empty where the
        labels or predictions are missing; every OOD metric empty without OOD sets).
    """
    bootstrap = bootstrap or U.Bootstrap()
    if resamples is None:
        resamples = table_resamples(scores, bootstrap)
    out = []
    seen: dict[bytes, dict] = {}  # rows with the same scores and predictions resample alike
    for method, score in rows:
        column = scores[f"{method}/{score}"].to_numpy()
        pred = f"pred.{method}"
        key = column.tobytes() + (scores[pred].to_numpy().tobytes() if pred in scores.columns else b"")
        if key not in seen:
            seen[key] = row_draws(scores, method, score, resamples)
        per_set = seen[key]
        if draws is not None:
            draws[(method, score)] = per_set
        for dataset, values in per_set.items():
            record = {"method": method, "score": score, "dataset": dataset}
            for metric in U.INTERVAL_METRICS:
                low, high = (
                    _percentiles(values[metric], bootstrap.level) if metric in values else (np.nan, np.nan)
                )
                record[f"{metric}_low"], record[f"{metric}_high"] = low, high
            out.append(record)
    return pd.DataFrame(out, columns=["method", "score", "dataset", *INTERVAL_COLUMNS])


def best_training_free(metrics: pd.DataFrame, metric: str = "fpr95") -> tuple[str, str] | None:
    """The training-free (method, score) row that is best on the mean over OOD sets, or None.

    Best = lowest mean FPR95 (ties: higher AUROC) for ``"fpr95"``, highest mean AUROC (ties: lower
    FPR95) for ``"auroc"``. Rows that adapt on the test stream are not candidates: they see the
    test set, the others see one image at a time.
    """
    mean = metrics[(metrics["dataset"] == "mean") & metrics["method"].map(is_training_free)].copy()
    mean["fpr95"] = pd.to_numeric(mean["fpr95"], errors="coerce")
    mean["auroc"] = pd.to_numeric(mean["auroc"], errors="coerce")
    mean = mean.dropna(subset=["fpr95", "auroc"])
    if mean.empty:
        return None
    keys = ["fpr95", "auroc"] if metric == "fpr95" else ["auroc", "fpr95"]
    ascending = [True, False] if metric == "fpr95" else [False, True]
    best = mean.sort_values(keys, ascending=ascending, kind="stable").iloc[0]
    return str(best["method"]), str(best["score"])


def against_training_free(metrics: pd.DataFrame, draws: dict, level: float = U.DEFAULT_LEVEL) -> pd.DataFrame:
    """Each trained row's difference to the best training-free row, with paired intervals.

    ``ref_fpr95`` / ``ref_auroc`` name the best training-free row by mean FPR95 / mean AUROC
    (`best_training_free`) as ``method/score``; ``d_fpr95`` (and ``_low``/``_high``) is the trained
    row's FPR95 minus that row's, per OOD set and for the mean (negative = the trained row accepts
    fewer OOD images); ``d_auroc`` likewise against ``ref_auroc`` (positive = better); ``d_id_acc``
    the ID accuracy against ``ref_fpr95``'s. Training-free rows have empty differences.

    Args:
        metrics: the metrics table (point estimates).
        draws: every row's resampled metrics (``row_intervals(..., draws=...)``), all on the same
            resamples.
        level: the confidence level.
    """
    refs = {"fpr95": best_training_free(metrics, "fpr95"), "auroc": best_training_free(metrics, "auroc")}
    refs["id_acc"] = refs["fpr95"]
    keyed = metrics.set_index(["method", "score", "dataset"])
    out = []
    for (method, score), per_set in draws.items():
        for dataset in per_set:
            record: dict = {"method": method, "score": score, "dataset": dataset}
            record["ref_fpr95"] = "/".join(refs["fpr95"]) if refs["fpr95"] else ""
            record["ref_auroc"] = "/".join(refs["auroc"]) if refs["auroc"] else ""
            for metric in COMPARED:
                ref = refs[metric]
                value = low = high = np.nan
                usable = (
                    ref is not None
                    and not is_training_free(method)
                    and ref in draws
                    and metric in per_set[dataset]
                    and metric in draws[ref][dataset]
                )
                if usable:
                    diff = per_set[dataset][metric] - draws[ref][dataset][metric]
                    value = float(
                        keyed.at[(method, score, dataset), metric] - keyed.at[(*ref, dataset), metric]
                    )
                    low, high = _percentiles(diff, level)
                record[f"d_{metric}"], record[f"d_{metric}_low"], record[f"d_{metric}_high"] = (
                    value,
                    low,
                    high,
                )
            out.append(record)
    return pd.DataFrame(out, columns=["method", "score", "dataset", *REFERENCE_COLUMNS])


def paired_rows(
    scores: pd.DataFrame,
    a: tuple[str, str],
    b: tuple[str, str],
    bootstrap: U.Bootstrap | None = None,
) -> pd.DataFrame:
    """Row B minus row A of one scores table, per OOD set and for the mean, with paired intervals.

    Both rows are scored on the same resamples of the same images, so the interval is that of the
    difference itself.

    Returns:
        One row per (dataset, metric): ``dataset, metric, a, b, delta, low, high`` (fractions;
        for ``fpr95`` a negative delta means B is better, for the others a positive one).
    """
    bootstrap = bootstrap or U.Bootstrap()
    resamples = table_resamples(scores, bootstrap)
    is_id = (scores["split"] == "id").to_numpy()
    id_a, oods_a = _row_scores(scores, *a)
    id_b, oods_b = _row_scores(scores, *b)
    ca, cb = _correct(scores, a[0], is_id), _correct(scores, b[0], is_id)
    correct = (ca, cb) if ca is not None and cb is not None else None
    diffs = U.paired_difference(
        (id_a, oods_a), (id_b, oods_b), correct=correct, resamples=resamples, bootstrap=bootstrap
    )
    points_a = U.point_metrics(id_a, oods_a, correct=ca)
    rows = []
    for dataset, per in diffs.items():
        for metric, d in per.items():
            a_value = points_a[dataset][metric]
            rows.append(
                {
                    "dataset": dataset,
                    "metric": metric,
                    "a": a_value,
                    "b": a_value + d.value,
                    "delta": d.value,
                    "low": d.low,
                    "high": d.high,
                }
            )
    frame = pd.DataFrame(rows, columns=["dataset", "metric", "a", "b", "delta", "low", "high"])
    frame.attrs["labels"] = (row_label(*a), row_label(*b))
    return frame
