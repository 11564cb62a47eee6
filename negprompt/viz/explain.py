"""Why one image was accepted or rejected: its similarity to every positive and negative prompt."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["explanation_figure", "prompt_similarities", "similarity_range", "top_similarities"]


def prompt_similarities(
    image_feature: np.ndarray, pos: np.ndarray, neg: np.ndarray | None, class_names: Sequence[str]
) -> pd.DataFrame:
    """Cosine similarity s = cos(f, t) of one image feature with every prompt of a method.

    Args:
        image_feature: [D] image feature (L2-normalised here, so float16 storage is fine).
        pos: [C, D] positive prompt features.
        neg: [C, M, D] negative prompt features, or None for methods without negatives.
        class_names: C class names.

    Returns:
        C(1+M) rows with columns ``kind`` (``positive`` / ``negative``), ``class_index``,
        ``class_name``, ``set`` (0 for positives, m = 1..M for negatives), ``prompt`` (a label
        such as ``"dog"`` or ``"dog · neg 2"``) and ``similarity``.
    """
    f = np.asarray(image_feature, dtype=np.float32).ravel()
    f = f / max(float(np.linalg.norm(f)), 1e-12)
    pos = np.asarray(pos, dtype=np.float32)
    if pos.ndim != 2 or pos.shape[1] != f.size:
        raise ValueError(f"positive features have shape {pos.shape}, expected [C, {f.size}]")
    names = np.asarray([str(c) for c in class_names], dtype=object)
    if names.size != pos.shape[0]:
        raise ValueError(f"{names.size} class names for {pos.shape[0]} positive prompts")
    pos_n = pos / np.maximum(np.linalg.norm(pos, axis=1, keepdims=True), 1e-12)
    classes = np.arange(pos.shape[0])
    frames = [
        pd.DataFrame(
            {
                "kind": "positive",
                "class_index": classes,
                "class_name": names,
                "set": 0,
                "prompt": names,
                "similarity": pos_n @ f,
            }
        )
    ]
    if neg is not None:
        neg = np.asarray(neg, dtype=np.float32)
        neg_n = neg / np.maximum(np.linalg.norm(neg, axis=2, keepdims=True), 1e-12)
        sims = neg_n @ f  # [C, M]
        c_idx, m_idx = np.meshgrid(classes, np.arange(neg.shape[1]), indexing="ij")
        c_idx, m_idx = c_idx.ravel(), m_idx.ravel()
        frames.append(
            pd.DataFrame(
                {
                    "kind": "negative",
                    "class_index": c_idx,
                    "class_name": names[c_idx],
                    "set": m_idx + 1,
                    "prompt": [f"{names[c]} · neg {m + 1}" for c, m in zip(c_idx, m_idx)],
                    "similarity": sims.ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def top_similarities(similarities: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The ``k`` most similar positive prompts and the ``k`` most similar negative prompts."""
    parts = [
        similarities[similarities["kind"] == kind].nlargest(k, "similarity")
        for kind in ("positive", "negative")
    ]
    return pd.concat(parts, ignore_index=True)


def explanation_figure(top: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Horizontal bars of an image's top positive and negative prompt similarities.

    An image is rejected by NegPrompt when its best negative prompts come close to (or beat) its
    best positive prompts, which this chart shows side by side. The x axis always includes 0 and
    the value labels sit outside the bar ends, unclipped (see `similarity_range`).

    Args:
        top: rows from `top_similarities` (columns ``kind``, ``prompt``, ``similarity``).
        title: figure title.

    Returns:
        One ``go.Bar`` trace per kind present (positive, then negative).
    """
    fig = go.Figure()
    colours = {"positive": "#1f77b4", "negative": "#d62728"}
    for kind in ("positive", "negative"):
        part = top[top["kind"] == kind].sort_values("similarity")
        if part.empty:
            continue
        fig.add_trace(
            go.Bar(
                x=part["similarity"],
                y=part["prompt"],
                orientation="h",
                name=f"{kind} prompts",
                marker_color=colours[kind],
                text=[f"{s:.3f}" for s in part["similarity"]],
                textposition="outside",
                cliponaxis=False,
            )
        )
    fig.update_layout(
        title=title or None,
        xaxis={"title": "cosine similarity", "range": similarity_range(top["similarity"]), "zeroline": True},
        yaxis={"type": "category", "automargin": True},
        legend={"orientation": "h", "y": -0.2},
        height=max(260, 28 * len(top) + 120),
        margin={"t": 40 if title else 10, "b": 10, "l": 10, "r": 30},
    )
    return fig


def similarity_range(similarities: pd.Series | np.ndarray) -> list[float]:
    """x-axis range of the explanation bars: always from 0, plus room for the value labels.

    Bars start at 0, so the axis must hold 0 (else, with all cosines negative, the longest bar
    would be the least similar prompt), and ``pad = 0.15 × span`` on each side that has bars keeps
    the ``0.123`` labels drawn outside the bar ends inside the figure.
    """
    values = np.asarray(similarities, dtype=np.float64)
    low = min(float(values.min()), 0.0) if values.size else 0.0
    high = max(float(values.max()), 0.0) if values.size else 1.0
    pad = max(0.15 * (high - low), 1e-3)
    return [low - pad if low < 0 else 0.0, high + pad if high > 0 else pad]
