"""Why one image was accepted or rejected: its similarity to every positive and negative prompt."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from negprompt.explain import Explanation

__all__ = [
    "decomposition_figure",
    "explain_row",
    "explanation_figure",
    "nearest_images",
    "prompt_similarities",
    "run_temperature",
    "similarity_range",
    "terms_table",
    "top_similarities",
]


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


# --------------------------------------------------------------------------- explanations of a run's rows


def run_temperature(config: dict) -> float:
    """The temperature T a run's scores were computed with (``experiment.settings.evaluation``; else 1)."""
    settings = ((config.get("experiment") or {}).get("settings") or {}).get("evaluation") or {}
    try:
        t = float(settings.get("temperature", 1.0))
    except (TypeError, ValueError):
        return 1.0
    return t if np.isfinite(t) and t > 0 else 1.0


def explain_row(
    column: str,
    item: pd.Series,
    image_feature: np.ndarray,
    pos: np.ndarray,
    neg: np.ndarray | None,
    class_names: Sequence[str],
    config: dict,
    *,
    label_features: np.ndarray | None = None,
    local_features: np.ndarray | None = None,
) -> Explanation:
    """The `negprompt.explain.Explanation` of one row of a run's scores table for score ``column``.

    The cosines are recomputed from the stored features (float16, so the reproduced score matches
    the stored one to about 1e-3 in relative terms). A run keeps GL-MCM's local MCM and region
    (``<method>/l_mcm``, ``<method>.best_region``) but not the patch features: GL-MCM is explained
    from those, L-MCM by its stored value and region. NegLabel needs the negative labels' features
    ``label_features`` [M, D] in group order (encode ``experiment.neglabel.words``).

    Args:
        column: ``<method>/<score>``.
        item: the row of ``scores.parquet``.
        image_feature: [D]; pos: [C, D]; neg: [C, M, D] or None.
        local_features: [P, D] the image's local features, when at hand (a new image): GL-MCM and
            L-MCM are then decomposed from them, and ``item`` may be empty.
    """
    from negprompt import explain as E

    method, score = column.split("/", 1)
    f = np.asarray(image_feature, dtype=np.float64).ravel()
    f /= max(float(np.linalg.norm(f)), 1e-12)

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    s_pos = unit(pos) @ f
    s_neg = None if neg is None else unit(neg) @ f
    t = run_temperature(config)
    names = list(class_names)[: len(s_pos)]
    region = item.get(f"{method}.best_region")
    region = int(region) if region is not None and pd.notna(region) else None
    if score in ("gl_mcm", "l_mcm") and local_features is not None:
        s_local = unit(local_features) @ unit(pos).T
        return E.explain(score, s_pos, s_neg, t, names, s_local=s_local)
    if score == "gl_mcm":
        local = item.get(f"{method}/l_mcm")
        if local is None or pd.isna(local):
            raise ValueError(f"run has no {method}/l_mcm column, so GL-MCM's local part is unknown")
        return E.explain_gl_mcm(s_pos, None, t, names, local_score=float(local), region=region)
    if score == "l_mcm":
        value = float(item[column])
        terms = {
            "local MCM q₁(p*)": value,
            **({"deciding region p*": float(region)} if region is not None else {}),
        }
        return E.Explanation(
            "l_mcm", value, int(np.argmax(s_pos)), terms,
            "S = max_p q₁(p): the best region's MCM (the run keeps its value and region, not the patches)",
            E.explain_mcm(s_pos, t, names).rows, region,
        )  # fmt: skip
    if score == "neglabel":
        if label_features is None:
            raise ValueError("NegLabel's explanation needs the features of its negative labels")
        nl = (config.get("experiment") or {}).get("neglabel") or {}
        return E.explain(
            "neglabel", s_pos, None, t, names, s_labels=unit(label_features) @ f,
            label_words=nl.get("words"), groups=int(nl.get("groups", 1)),
        )  # fmt: skip
    return E.explain(score, s_pos, s_neg, t, names)


def decomposition_figure(exp, k: int = 10) -> go.Figure:
    """Bars of the ``k`` largest shares of an explanation (prompts, regions or labels), by kind.

    For NegPrompt the first bar pair is the positive vs negative mass, so the split the score rests
    on is seen before the prompts that make it.
    """
    fig = go.Figure()
    colours = {"positive": "#1f77b4", "negative": "#d62728", "negative label": "#d62728", "region": "#2ca02c"}
    top = exp.rows.head(k).iloc[::-1]
    for kind in dict.fromkeys(top["kind"]):
        part = top[top["kind"] == kind]
        fig.add_trace(
            go.Bar(
                x=part["share"], y=part["prompt"].astype(str), orientation="h", name=str(kind),
                marker_color=colours.get(str(kind), "#7f7f7f"),
                text=[f"{100 * s:.1f}% (cos {c:.3f})" for s, c in zip(part["share"], part["similarity"])],
                textposition="outside", cliponaxis=False,
            )
        )  # fmt: skip
    mass = "positive mass P⁺"
    if mass in exp.terms:
        fig.add_trace(
            go.Bar(
                x=[exp.terms[mass], 1 - exp.terms[mass]], y=["ALL positives", "ALL negatives"], orientation="h",
                marker_color=["#1f77b4", "#d62728"], name="mass", showlegend=False,
                text=[f"{100 * exp.terms[mass]:.1f}%", f"{100 * (1 - exp.terms[mass]):.1f}%"],
                textposition="outside", cliponaxis=False,
            )
        )  # fmt: skip
    fig.update_layout(
        xaxis={"title": "share of the softmax mass", "range": [0, 1.25], "tickformat": ".0%"},
        yaxis={"type": "category", "automargin": True},
        legend={"orientation": "h", "y": -0.25},
        barmode="overlay",
        height=max(260, 26 * (len(top) + 2) + 110),
        margin={"t": 10, "b": 10, "l": 10, "r": 30},
    )
    return fig


def terms_table(exp) -> pd.DataFrame:
    """The named terms of an explanation and the reproduced score, one row each."""
    rows = [{"term": k, "value": float(v)} for k, v in exp.terms.items()]
    rows.append({"term": f"score S ({exp.score_name})", "value": float(exp.score)})
    return pd.DataFrame(rows)


def nearest_images(features: np.ndarray, query: np.ndarray, rows: np.ndarray, k: int = 5) -> np.ndarray:
    """The ``k`` rows (of ``rows``, indices into ``features``) whose features are closest to ``query`` by cosine."""
    rows = np.asarray(rows, dtype=np.int64)
    if not rows.size:
        return rows
    x = np.asarray(features[np.sort(rows)], dtype=np.float32)
    q = np.asarray(query, dtype=np.float32).ravel()
    sims = x @ q / np.maximum(np.linalg.norm(x, axis=1) * max(float(np.linalg.norm(q)), 1e-12), 1e-12)
    order = np.argsort(-sims, kind="stable")[:k]
    return np.sort(rows)[order]
