"""Plotly figures of scores and metrics: pure functions of data that return ``go.Figure``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from negprompt.analysis import rates_at, roc_points
from negprompt.viz.tables import METRIC_LABELS

__all__ = [
    "PALETTE",
    "metrics_comparison_figure",
    "roc_figure",
    "score_histogram_figure",
    "score_pair_figure",
]

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
"""Colours by set: the ID set first (blue), then the OOD sets."""

_MAX_SCATTER_POINTS = 4000  # per set; more points slow the browser without showing more


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def score_histogram_figure(
    id_scores: np.ndarray,
    ood_scores: Mapping[str, np.ndarray],
    *,
    id_name: str = "ID",
    threshold: float | None = None,
    title: str = "",
    nbins: int | None = None,
) -> go.Figure:
    """Overlaid histograms (density) of the ID scores and of each OOD set's scores, shared bins.

    Args:
        id_scores: [N_id] ID scores.
        ood_scores: OOD set name -> [N_k] scores (empty sets are skipped).
        id_name: legend name of the ID set.
        threshold: draws a vertical line at the decision threshold when given.
        title: figure title.
        nbins: number of bins over the range of all scores (default: 2·√N, clipped to [20, 80]).

    Returns:
        A figure with one ``go.Histogram`` per non-empty set (ID first).
    """
    sets = {id_name: np.asarray(id_scores, dtype=np.float64)}
    sets.update({k: np.asarray(v, dtype=np.float64) for k, v in ood_scores.items() if len(v)})
    everything = np.concatenate([v for v in sets.values() if v.size] or [np.zeros(1)])
    low, high = float(everything.min()), float(everything.max())
    if nbins is None:
        nbins = int(np.clip(2 * np.sqrt(everything.size), 20, 80))
    size = (high - low) / nbins if high > low else 1.0
    fig = go.Figure()
    for i, (name, values) in enumerate(sets.items()):
        if not values.size:
            continue
        fig.add_trace(
            go.Histogram(
                x=values,
                name=f"{name} (n={values.size})",
                xbins={"start": low, "end": high + size, "size": size},
                histnorm="probability density",
                opacity=0.55,
                marker_color=_colour(i),
            )
        )
    if threshold is not None:
        fig.add_vline(x=threshold, line_dash="dash", line_color="black", annotation_text="threshold")
    fig.update_layout(
        barmode="overlay",
        title=title or None,
        xaxis_title="score (higher = more in-distribution)",
        yaxis_title="density",
        legend={"orientation": "h", "y": -0.25},
        margin={"t": 40 if title else 10, "b": 10},
    )
    return fig


def roc_figure(
    id_scores: np.ndarray,
    ood_scores: Mapping[str, np.ndarray],
    *,
    threshold: float | None = None,
    title: str = "",
) -> go.Figure:
    """ROC curves (ID = positive) of the ID set against each non-empty OOD set.

    Returns:
        A figure with one line per OOD set, a dashed chance line and, with ``threshold``, one
        marker trace of the operating points (FPR, TPR) at that threshold.
    """
    fig = go.Figure()
    points_x, points_y, points_text = [], [], []
    for i, (name, values) in enumerate(ood_scores.items(), start=1):
        if not len(values):
            continue
        fpr, tpr = roc_points(id_scores, values)
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=name, line={"color": _colour(i)}))
        if threshold is not None:
            r = rates_at(id_scores, values, threshold)
            points_x.append(r.fpr)
            points_y.append(r.tpr)
            points_text.append(f"{name}: TPR {100 * r.tpr:.1f}%, FPR {100 * r.fpr:.1f}%")
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "gray"})
    )
    if threshold is not None:
        fig.add_trace(
            go.Scatter(
                x=points_x,
                y=points_y,
                mode="markers",
                name="at threshold",
                text=points_text,
                hoverinfo="text",
                marker={"size": 11, "color": "black", "symbol": "x"},
            )
        )
    fig.update_layout(
        title=title or None,
        xaxis={"title": "FPR (OOD accepted)", "range": [0, 1]},
        yaxis={"title": "TPR (ID accepted)", "range": [0, 1.01]},
        legend={"orientation": "h", "y": -0.25},
        margin={"t": 40 if title else 10, "b": 10},
    )
    return fig


def score_pair_figure(
    scores: pd.DataFrame,
    x_col: str,
    y_col: str,
    *,
    thresholds: tuple[float | None, float | None] = (None, None),
    max_points: int = _MAX_SCATTER_POINTS,
    seed: int = 0,
) -> go.Figure:
    """Two scores of the same images against each other, one scatter trace per dataset.

    Args:
        scores: per-image table with ``dataset``, ``split`` and both score columns.
        x_col, y_col: the two score columns, e.g. ``"coop/mcm"`` and ``"negprompt/negprompt"``.
        thresholds: optional thresholds of the x and the y score, drawn as lines.
        max_points: at most this many points per dataset (a seeded random sample).
        seed: seed of the sample.

    Returns:
        A figure with one ``go.Scatter`` per dataset (ID first).
    """
    rng = np.random.default_rng(seed)
    fig = go.Figure()
    order = list(dict.fromkeys(scores.loc[scores["split"] == "id", "dataset"]))
    order += [d for d in dict.fromkeys(scores["dataset"]) if d not in order]
    for i, name in enumerate(order):
        part = scores.loc[scores["dataset"] == name, [x_col, y_col]]
        if len(part) > max_points:
            part = part.iloc[np.sort(rng.choice(len(part), max_points, replace=False))]
        fig.add_trace(
            go.Scatter(
                x=part[x_col],
                y=part[y_col],
                mode="markers",
                name=f"{name} (n={int((scores['dataset'] == name).sum())})",
                marker={"size": 5, "opacity": 0.6, "color": _colour(i)},
            )
        )
    if thresholds[0] is not None:
        fig.add_vline(x=thresholds[0], line_dash="dash", line_color="black")
    if thresholds[1] is not None:
        fig.add_hline(y=thresholds[1], line_dash="dash", line_color="black")
    fig.update_layout(
        xaxis_title=x_col,
        yaxis_title=y_col,
        legend={"orientation": "h", "y": -0.25},
        margin={"t": 10, "b": 10},
    )
    return fig


def metrics_comparison_figure(
    tables: Mapping[str, pd.DataFrame], metric: str = "auroc", *, title: str = "", x: str = "dataset"
) -> go.Figure:
    """Grouped bars of one metric per dataset (or per method), one bar trace per run.

    Args:
        tables: label -> rows of metrics.csv with columns ``x`` and ``metric`` (fractions; shown as
            percentages): one (method, score) per dataset, or `negprompt.viz.method_rows` (``x="row"``).
        metric: ``fpr95``, ``auroc``, ``aupr_in``, ``aupr_out`` or ``id_acc``.
        title: figure title.
        x: the column naming the bars of a group.
    """
    fig = go.Figure()
    for i, (label, table) in enumerate(tables.items()):
        fig.add_trace(
            go.Bar(x=table[x], y=100.0 * table[metric].astype(float), name=label, marker_color=_colour(i))
        )
    fig.update_layout(
        barmode="group",
        title=title or None,
        yaxis_title=METRIC_LABELS.get(metric, f"{metric} %"),
        legend={"orientation": "h", "y": -0.25},
        margin={"t": 40 if title else 10, "b": 10},
    )
    return fig
