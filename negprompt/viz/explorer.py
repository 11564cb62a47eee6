"""The threshold explorer: which images flip, a readout as fine as the scores, and a figure that
carries its own slider.

Same conventions as `negprompt.analysis`: an image is accepted (called ID) when
``score >= threshold``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from numpy.typing import ArrayLike
from plotly.subplots import make_subplots

from negprompt.analysis import decision_counts, threshold_at_tpr
from negprompt.viz.figures import score_histogram_figure

__all__ = ["KEPT_STEPS", "flipped_images", "score_digits", "threshold_explorer_figure"]

KEPT_STEPS = tuple(float(p) for p in np.arange(50.0, 100.0 + 1e-9, 0.5))
"""The explorer's slider: the share of ID images kept, 50% to 100% in steps of 0.5%."""


def score_digits(scores: ArrayLike, most: int = 10) -> int:
    """Decimals that tell every two distinct scores apart: ``ceil(-log10(g)) + 1`` for the
    smallest gap ``g`` between sorted distinct finite scores (at least 2, at most ``most``).

    A threshold printed with fewer decimals than this, typed back, can land on the other side of a
    score and give a different count.
    """
    arr = np.unique(np.asarray(scores, dtype=np.float64).ravel())
    arr = arr[np.isfinite(arr)]
    gaps = np.diff(arr)
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return 2
    return int(min(most, max(2, math.ceil(-math.log10(float(gaps.min()))) + 1)))


def flipped_images(
    scores: pd.DataFrame, score_col: str, reference: float, threshold: float, k: int | None = None
) -> pd.DataFrame:
    """Images decided differently at ``threshold`` than at ``reference``, nearest ``threshold`` first.

    Moving a threshold from ``reference`` to ``threshold`` flips exactly the images whose score lies
    between the two; the ones nearest the new threshold are the closest calls.

    Args:
        scores: the per-image table (``dataset``, ``split``, ``path`` and ``score_col``).
        score_col: the score column deciding acceptance.
        reference: the threshold compared with (e.g. the FPR95 threshold).
        threshold: the threshold now.
        k: keep at most this many rows (None: all).

    Returns:
        The flipped rows with the original row number as column ``row`` and the added columns
        ``score``, ``accepted`` (at ``threshold``) and ``distance`` (``|score - threshold|``).
    """
    score = scores[score_col].to_numpy(dtype=np.float64)
    now = score >= threshold
    rows = np.flatnonzero(now != (score >= reference))
    columns = [c for c in ("dataset", "split", "path", "label_name", "ood_class") if c in scores.columns]
    out = scores.iloc[rows][columns].copy()
    out.insert(0, "row", rows)
    out["score"] = score[rows]
    out["accepted"] = now[rows]
    out["distance"] = np.abs(score[rows] - threshold)
    out = out.sort_values("distance", kind="stable").reset_index(drop=True)
    return out if k is None else out.head(k)


def _flip_cells(flips: pd.DataFrame, digits: int) -> list[list[str]]:
    """The flips table's columns: file, set (with its class), score, decision now."""
    own = [
        str(o) if isinstance(o, str) and o else str(n) if isinstance(n, str) and n else ""
        for o, n in zip(flips.get("ood_class", [""] * len(flips)), flips.get("label_name", [""] * len(flips)))
    ]
    return [
        [os.path.basename(str(p)) for p in flips["path"]],
        [f"{d} ({c})" if c else str(d) for d, c in zip(flips["dataset"], own)],
        [f"{v:.{digits}f}" for v in flips["score"]],
        ["accepted" if a else "rejected" for a in flips["accepted"]],
    ]


def _count_cells(counts: pd.DataFrame) -> list[list]:
    """The counts table's columns: set, images, accepted, rejected, accepted %."""
    return [
        list(counts["dataset"]),
        [int(v) for v in counts["images"]],
        [int(v) for v in counts["accepted"]],
        [int(v) for v in counts["rejected"]],
        [f"{v:.1f}" for v in counts["accepted_pct"]],
    ]


def threshold_explorer_figure(
    scores: pd.DataFrame,
    score_col: str,
    *,
    kept: Sequence[float] = KEPT_STEPS,
    reference: float = 95.0,
    k: int = 10,
    title: str = "",
) -> go.Figure:
    """A threshold explorer in one plotly figure: its slider needs no kernel and no server.

    The slider sets the share of ID images kept, p in ``kept`` (%); the threshold is
    ``threshold_at_tpr(ID scores, p / 100)``. Every step of the slider redraws, from data stored in
    the figure: the threshold line on the score histograms, the readout (threshold with
    `score_digits` decimals, the reference threshold, how many images flip), the images accepted
    and rejected per set (`negprompt.analysis.decision_counts`) and the ``k`` images nearest the
    threshold among those decided differently than at the reference (`flipped_images`). Being
    self-contained, the figure works the same in a live notebook, a saved and reopened one, an
    exported HTML page, and the dashboard's score page (``st.plotly_chart``).

    Args:
        scores: the per-image table (``dataset``, ``split``, ``path`` and ``score_col``; ``ood_class``
            and ``label_name`` name each image's class when present).
        score_col: the score column, e.g. ``"negprompt/negprompt"``.
        kept: the slider's steps, shares of ID images kept in % (each in (0, 100]).
        reference: the share (%) the slider starts at and flips are counted from (95: FPR95).
        k: flips listed per step.
        title: a title above the readout.

    Returns:
        A figure with one histogram per set (ID first), then the counts table and the flips table
        (the last two traces), the threshold line as ``layout.shapes[0]`` and one slider whose
        steps (``method="update"``) set both tables, the line and the title.
    """
    kept = [float(p) for p in kept]
    if not kept or not all(0.0 < p <= 100.0 for p in kept):
        raise ValueError("kept: give shares of ID images in (0, 100] %")
    is_id = (scores["split"] == "id").to_numpy()
    values = scores[score_col].to_numpy(dtype=np.float64)
    id_scores = values[is_id]
    if not id_scores.size:
        raise ValueError("the explorer needs ID images to set a threshold")
    digits = score_digits(values)
    base = threshold_at_tpr(id_scores, reference / 100.0)
    datasets = scores["dataset"].to_numpy()
    id_name = str(datasets[is_id][0])
    ood = {str(d): values[~is_id & (datasets == d)] for d in dict.fromkeys(datasets[~is_id])}

    # heights in pixels: the histograms, then each table with room for all its rows (no scrolling)
    top, heights, gap = (150 if title else 120), [320, 26 + 24 * (len(ood) + 1) + 8, 26 + 24 * k + 8], 55
    fig = make_subplots(
        rows=3, cols=1, row_heights=heights, vertical_spacing=gap / (sum(heights) + 2 * gap),
        specs=[[{"type": "xy"}], [{"type": "table"}], [{"type": "table"}]],
    )  # fmt: skip
    for trace in score_histogram_figure(id_scores, ood, id_name=id_name).data:
        fig.add_trace(trace, row=1, col=1)
    header = {"align": "left", "fill": {"color": "#e8e8e8"}, "height": 26}
    cells = {"align": "left", "height": 24}
    fig.add_trace(go.Table(header={**header, "values": ["set", "images", "accepted", "rejected", "accepted %"]},
                           cells={**cells, "values": [[]] * 5}), row=2, col=1)  # fmt: skip
    fig.add_trace(go.Table(header={**header, "values": ["flipped image (nearest first)", "set", "score", "now"]},
                           columnwidth=[3, 3, 2, 1.5], cells={**cells, "values": [[]] * 4}), row=3, col=1)  # fmt: skip
    tables = [len(fig.data) - 2, len(fig.data) - 1]
    for x, dash, colour in ((base, "dash", "black"), (base, "dot", "grey")):
        fig.add_shape(type="line", x0=x, x1=x, y0=0, y1=1, xref="x", yref="y domain",
                      line={"dash": dash, "color": colour})  # fmt: skip

    steps = []
    for p in kept:
        threshold = threshold_at_tpr(id_scores, p / 100.0)
        flips = flipped_images(scores, score_col, base, threshold)
        readout = (
            f"ID kept {p:.1f}%: threshold {threshold:.{digits}f} "
            f"(at {reference:g}%: {base:.{digits}f}) · {len(flips)} images flip"
        )
        data = {"cells.values": [_count_cells(decision_counts(scores, score_col, threshold)),
                                 _flip_cells(flips.head(k), digits)]}  # fmt: skip
        layout = {"shapes[0].x0": threshold, "shapes[0].x1": threshold,
                  "title.text": f"{title}<br>{readout}" if title else readout}  # fmt: skip
        steps.append({"method": "update", "label": f"{p:g}", "args": [data, layout, tables]})
    active = int(np.argmin([abs(p - reference) for p in kept]))
    start = steps[active]["args"]
    for i, values_i in zip(tables, start[0]["cells.values"]):
        fig.data[i].cells.values = values_i
    fig.layout.shapes[0].x0 = fig.layout.shapes[0].x1 = start[1]["shapes[0].x0"]
    fig.update_layout(
        title={"text": start[1]["title.text"], "x": 0.01, "xanchor": "left", "y": 1.0, "yanchor": "top",
               "yref": "container", "pad": {"t": 12}},
        height=top + sum(heights) + 2 * gap + 20,
        barmode="overlay",
        legend={"x": 0.99, "xanchor": "right", "y": 0.99, "yanchor": "top", "bgcolor": "rgba(255,255,255,0.7)"},
        margin={"t": top, "b": 20, "l": 50, "r": 20},
        xaxis={"title": f"score (higher = more in-distribution); dashed: the threshold, dotted: at {reference:g}%"},
        yaxis={"title": "density"},
        # one step per 0.5%: too many for their labels, so only the current value is written
        sliders=[{"active": active, "steps": steps, "x": 0, "len": 1.0, "y": 1.0, "yanchor": "bottom",
                  "pad": {"t": 0, "b": 30}, "font": {"color": "rgba(0,0,0,0)"}, "ticklen": 3,
                  "currentvalue": {"prefix": "ID kept (%): ", "font": {"color": "#333", "size": 13}}}],
    )  # fmt: skip
    return fig
