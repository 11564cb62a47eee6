"""Tables for display: metrics as percentages and a one-row summary of a run's config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["METRIC_LABELS", "compare_metrics", "config_summary", "metrics_percent"]

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
