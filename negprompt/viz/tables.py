"""Tables for display: metrics as percentages, the methods side by side, a summary of a run's config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from negprompt.leaderboard import leaderboard
from negprompt.rundir.schema import RunDirError
from negprompt.table_rows import row_label, table_rows

__all__ = [
    "METRIC_LABELS",
    "leaderboard_table",
    "compare_methods",
    "compare_metrics",
    "config_summary",
    "method_rows",
    "metrics_percent",
    "shifted_accuracy_table",
]

METRIC_LABELS = {
    "fpr95": "FPR95 %",
    "auroc": "AUROC %",
    "aupr_in": "AUPR-In %",
    "aupr_out": "AUPR-Out %",
    "id_acc": "ID acc %",
}
"""metrics.csv column -> displayed column name (values shown x 100)."""


def metrics_percent(
    metrics: pd.DataFrame, *, method: str | None = None, score: str | None = None
) -> pd.DataFrame:
    """metrics.csv rows as percentages, each OOD set first and ``mean`` last per (method, score).

    Args:
        metrics: metrics.csv (``method, score, dataset, fpr95, auroc, aupr_in, aupr_out, id_acc``;
            fractions).
        method, score: keep only these (None = all).

    Returns:
        Columns ``method, score, dataset`` and the `METRIC_LABELS` names, rounded to 2 decimals.
    """
    table = metrics.copy()
    if method is not None:
        table = table[table["method"] == method]
    if score is not None:
        table = table[table["score"] == score]
    keys = ["method", "score", "dataset"]
    present = [c for c in METRIC_LABELS if c in table.columns]
    table["_mean_last"] = (table["dataset"] == "mean").astype(int)
    table = table.sort_values(["method", "score", "_mean_last"], kind="stable")
    out = table[keys].copy()
    for col in present:
        out[METRIC_LABELS[col]] = (100.0 * pd.to_numeric(table[col], errors="coerce")).round(2)
    return out.reset_index(drop=True)


def compare_metrics(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str]) -> pd.DataFrame:
    """Two runs' metrics side by side on their common (method, score, dataset) rows, with the change.

    Args:
        a, b: metrics.csv tables of two runs.
        names: labels of the two runs (used as column suffixes).

    Returns:
        Columns ``method, score, dataset``, then per metric ``<label> <name a>``,
        ``<label> <name b>`` and ``<label> Δ`` (b - a, percentage points).
    """
    if names[0] == names[1]:
        names = (names[0], f"{names[1]} (2)")
    pa = metrics_percent(a)
    pb = metrics_percent(b)
    keys = ["method", "score", "dataset"]
    merged = pa.merge(pb, on=keys, how="outer", suffixes=(f" {names[0]}", f" {names[1]}"))
    # Rows in the order of run a (OOD sets, then mean), then rows only run b has.
    order = {
        k: i
        for i, k in enumerate(
            dict.fromkeys([*pa[keys].itertuples(index=False), *pb[keys].itertuples(index=False)])
        )
    }
    merged["_order"] = [order[k] for k in merged[keys].itertuples(index=False)]
    merged = merged.sort_values("_order", kind="stable").reset_index(drop=True)
    columns = list(keys)
    for label in METRIC_LABELS.values():
        ca, cb = f"{label} {names[0]}", f"{label} {names[1]}"
        if ca in merged.columns and cb in merged.columns:
            merged[f"{label} Δ"] = (merged[cb] - merged[ca]).round(2)
            columns += [ca, cb, f"{label} Δ"]
    return merged[columns]


def method_rows(metrics: pd.DataFrame, dataset: str = "mean") -> pd.DataFrame:
    """The rows of the results table (`negprompt.table_rows.table_rows`) for one dataset.

    Every method once with its headline score (MCM, CoOp + MCM, NegPrompt, LoCoOp + MCM, NegLabel),
    plus the GL-MCM and L-MCM rows a run has.

    Args:
        metrics: metrics.csv of one run (fractions).
        dataset: an OOD set, or ``mean`` (the mean over the OOD sets).

    Returns:
        Columns ``row`` (the table's name of the row), ``method``, ``score`` and the metric columns
        of ``metrics`` (fractions), in the results table's order.
    """
    part = metrics[metrics["dataset"] == dataset].set_index(["method", "score"])
    keys = [k for k in table_rows(metrics) if k in part.index]
    out = part.loc[keys].reset_index() if keys else part.iloc[:0].reset_index()
    out.insert(0, "row", [row_label(m, s) for m, s in keys])
    return out.drop(columns="dataset").reset_index(drop=True)


def compare_methods(
    a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str], dataset: str = "mean"
) -> pd.DataFrame:
    """Every row of the results table of two runs side by side (`compare_metrics` on those rows).

    Returns:
        Columns ``row, method, score``, then per metric ``<label> <name a>``, ``<label> <name b>``
        and ``<label> Δ`` (b - a, percentage points), in the results table's order (run a's rows,
        then those only b has).
    """
    order = {key: i for i, key in enumerate(dict.fromkeys([*table_rows(a), *table_rows(b)]))}
    table = compare_metrics(a, b, names)
    table = table[table["dataset"] == dataset].drop(columns="dataset")
    position = [order.get(key, -1) for key in zip(table["method"], table["score"])]
    out = table.assign(_order=position).query("_order >= 0").sort_values("_order", kind="stable")
    out.insert(0, "row", [row_label(m, s) for m, s in zip(out["method"], out["score"])])
    return out.drop(columns="_order").reset_index(drop=True)


def config_summary(config: Mapping[str, Any]) -> dict[str, str]:
    """The facts of a run's config.json a person looks for first, as display strings."""
    backbone = config.get("backbone") or {}
    data = config.get("data") or {}
    software = config.get("software") or {}
    return {
        "name": str(config.get("name", "")),
        "kind": str(config.get("kind", "")),
        "created": str(config.get("created", "")),
        "backbone": str(backbone.get("name", "")),
        "weights": str(backbone.get("weights", "")),
        "random weights": "yes" if backbone.get("random_weights") else "no",
        "ID set": str(data.get("id", "")),
        "OOD sets": ", ".join(map(str, data.get("ood") or [])),
        "classes": str(len(data.get("class_names") or [])),
        "methods": ", ".join(map(str, config.get("methods") or [])),
        "scores": ", ".join(map(str, config.get("scores") or [])),
        "device": str(software.get("device", "")),
    }


def _span(low: float, high: float, signed: bool = False) -> str:
    if pd.isna(low) or pd.isna(high):
        return "no interval"
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"[{f.format(100 * low)}, {f.format(100 * high)}]"


def leaderboard_table(metrics: pd.DataFrame, dataset: str = "mean", sort_by: str = "fpr95") -> pd.DataFrame:
    """The whole leaderboard of one dataset for display (`negprompt.leaderboard.leaderboard`).

    Returns:
        One row per (method, score): ``★`` on the best training-free row, ``row``, ``kind``, each
        metric in percent (numbers, so that a table sorts by them) with its interval as text, and
        the trained rows' ``Δ FPR95 pp`` / ``Δ AUROC pp`` to the best training-free row with their
        paired intervals. Runs written before intervals show "no interval".
    """
    board = leaderboard(metrics, dataset, sort_by)
    out = pd.DataFrame({"★": ["★" if b else "" for b in board["best_training_free"]], "row": board["row"]})
    out["kind"] = board["kind"]
    for metric, label in METRIC_LABELS.items():
        out[label] = (100 * board[metric]).round(2)
        if metric in ("fpr95", "auroc", "id_acc"):
            out[f"{label.replace(' %', '')} interval"] = [
                _span(lo, hi) for lo, hi in zip(board[f"{metric}_low"], board[f"{metric}_high"])
            ]
    for metric, label in (("fpr95", "Δ FPR95 pp"), ("auroc", "Δ AUROC pp")):
        out[label] = (100 * board[f"d_{metric}"]).round(2)
        out[f"{label} interval"] = [
            "" if pd.isna(d) else _span(lo, hi, signed=True)
            for d, lo, hi in zip(board[f"d_{metric}"], board[f"d_{metric}_low"], board[f"d_{metric}_high"])
        ]
    return out


def shifted_accuracy_table(config: Mapping[str, Any]) -> pd.DataFrame | None:
    """The run's ID accuracy under covariate shift (``experiment.shifted_accuracy`` of config.json) in
    percent, one row per method and set, with its interval; None when the run has none.

    Raises:
        RunDirError: the entry is damaged (the message names config.json and the bad entry).
    """
    entries = (
        (config.get("experiment") or {}).get("shifted_accuracy") if isinstance(config, Mapping) else None
    )
    if entries is None:
        return None
    where = "config.json: experiment.shifted_accuracy"
    if not isinstance(entries, list):
        raise RunDirError(f"{where} must be a list of rows, not {type(entries).__name__}")
    rows = []
    for k, e in enumerate(entries):
        ok = isinstance(e, Mapping) and isinstance(e.get("method"), str) and isinstance(e.get("dataset"), str)
        values = [e.get(c) for c in ("acc", "acc_low", "acc_high")] if ok else []
        ok = ok and isinstance(e.get("images"), int) and e["images"] >= 0
        ok = ok and all(
            v is None or (isinstance(v, int | float) and (v != v or 0.0 <= v <= 1.0)) for v in values
        )
        ok = ok and values[0] is not None
        if not ok:
            raise RunDirError(
                f"{where}[{k}] is not a row of method, dataset, images and accuracies in [0, 1]; "
                "rewrite the run with `negprompt run` or remove the entry"
            )
        pct = [None if v is None or v != v else round(100 * float(v), 2) for v in values]
        span = "—" if None in pct[1:] else f"[{pct[1]:.1f}, {pct[2]:.1f}]"
        rows.append({"method": e["method"], "set": e["dataset"], "images": e["images"], "top-1 %": pct[0],
                     "interval %": span})  # fmt: skip
    return pd.DataFrame(rows, columns=["method", "set", "images", "top-1 %", "interval %"])
