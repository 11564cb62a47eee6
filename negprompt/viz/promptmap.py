"""An embedding map that does not invent: identical prompts merged, images coloured by class or set,
and the neighbour preservation (trustworthiness) of the projection measured beside it.

`map_points` stacks prompts (each group of identical prompts as one point with a count) and a sample
of images; `map_sentence` says which prompts are identical; `map_trustworthiness` measures how well
the 2-D map keeps the nearest neighbours of the features (Venna & Kaski 2001; scikit-learn's
``trustworthiness``: 1 = every map neighbour is a true neighbour); `map_figure` draws it, with each
point's ``customdata`` its row in the run (images) or -1 (prompts), for click-to-explain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from negprompt.viz.figures import PALETTE

__all__ = [
    "IDENTICAL_TOL",
    "identical_groups",
    "map_figure",
    "map_points",
    "map_sentence",
    "map_trustworthiness",
]

IDENTICAL_TOL = 1e-4
"""Prompts whose cosine distance 1 − cos is below this are drawn as one marker."""
MAX_CLASS_TRACES = 20
"""Up to this many ID classes in the sample, one legend entry (and colour) per class; beyond, one trace
coloured by class index."""


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def identical_groups(features: np.ndarray, tol: float = IDENTICAL_TOL) -> np.ndarray:
    """[P] group id of every row: rows linked by 1 − cos < ``tol`` (transitively) share an id.

    Ids are the smallest row index of each group, so a row that is unlike all others keeps its own.
    """
    x = _unit(features)
    n = len(x)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, n, 1024):
        close = (1.0 - x[start : start + 1024] @ x.T) < tol
        for a, b in zip(*np.nonzero(close)):
            ra, rb = find(start + int(a)), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


def map_points(
    pos: np.ndarray,
    neg: np.ndarray | None,
    class_names: Sequence[str],
    *,
    image_features: np.ndarray | None = None,
    image_meta: pd.DataFrame | None = None,
    tol: float = IDENTICAL_TOL,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows to project: one per group of identical prompts, then one per image.

    Args:
        pos: [C, D]; neg: [C, M, D] or None; class_names: C names.
        image_features: [N, D] a sample of the run's images; image_meta: N rows with ``row`` (the
            run's row), ``split``, ``dataset`` and ``label_name``.

    Returns:
        ``(features [Q, D], meta)``; meta has ``kind`` (``positive``, ``negative``, ``image``),
        ``group`` (legend entry: ``positive``, ``negative m``, ``positive = negative m``…,
        ``ID: <class>`` or ``OOD: <set>``), ``count`` (prompts merged into the point), ``members``
        (their labels), ``class_name``, ``row`` (-1 for prompts) and ``hover``.
    """
    pos = np.asarray(pos, dtype=np.float32)
    names = [str(c) for c in class_names]
    if len(names) != len(pos):
        raise ValueError(f"{len(names)} class names for {len(pos)} positive prompts")
    blocks, labels, kinds, sets, classes = (
        [pos],
        list(names),
        ["positive"] * len(pos),
        ["positive"] * len(pos),
        names[:],
    )
    if neg is not None:
        neg = np.asarray(neg, dtype=np.float32)
        for m in range(neg.shape[1]):
            blocks.append(neg[:, m])
            labels += [f"{c} · neg {m + 1}" for c in names]
            kinds += ["negative"] * len(names)
            sets += [f"negative {m + 1}"] * len(names)
            classes += names
    prompts = np.concatenate(blocks)
    group = identical_groups(prompts, tol)
    rows = []
    for g in dict.fromkeys(group):
        members = np.flatnonzero(group == g)
        member_sets = list(dict.fromkeys(sets[i] for i in members))
        member_classes = list(dict.fromkeys(classes[i] for i in members))
        rows.append(
            {
                "kind": "positive" if "positive" in member_sets else "negative",
                "group": " = ".join(member_sets),
                "count": len(members),
                "members": ", ".join(labels[i] for i in members),
                "class_name": " / ".join(member_classes),
                "row": -1,
                "first": int(members[0]),
            }
        )
    meta = pd.DataFrame(rows)
    features = [prompts[meta["first"].to_numpy()]]
    meta["hover"] = [
        f"{r.members}" + (f" ({r.count} identical prompts)" if r.count > 1 else "") for r in meta.itertuples()
    ]
    meta = meta.drop(columns="first")
    if image_features is not None and len(image_features):
        if image_meta is None or len(image_meta) != len(image_features):
            raise ValueError("image_meta must describe every row of image_features")
        is_id = image_meta["split"].to_numpy() == "id"
        label = image_meta["label_name"].fillna("").astype(str).to_numpy()
        dataset = image_meta["dataset"].astype(str).to_numpy()
        group_of = np.where(is_id, "ID: " + label, "OOD: " + dataset)
        images = pd.DataFrame(
            {
                "kind": "image",
                "group": group_of,
                "count": 1,
                "members": "",
                "class_name": np.where(is_id, label, ""),
                "row": image_meta["row"].to_numpy(dtype=np.int64),
                "hover": [f"#{r} · {d} · {g}" for r, d, g in zip(image_meta["row"], dataset, group_of)],
            }
        )
        meta = pd.concat([meta, images], ignore_index=True)
        features.append(np.asarray(image_features, dtype=np.float32))
    return np.concatenate(features).astype(np.float32), meta


def map_sentence(meta: pd.DataFrame, n_prompts: int, tol: float = IDENTICAL_TOL) -> str:
    """Which prompts are identical, in one sentence ('' when none are)."""
    merged = meta[(meta["kind"] != "image") & (meta["count"] > 1)]
    if merged.empty:
        return ""
    markers = int((meta["kind"] != "image").sum())
    patterns = merged.groupby("group", sort=False).size()
    parts = [
        f"{' and '.join(g.split(' = '))} are the same vector for {n} class{'es' if n != 1 else ''}"
        for g, n in patterns.items()
    ]
    return (
        f"{n_prompts} prompts are drawn as {markers} markers: {'; '.join(parts)} "
        f"(1 − cos < {tol:g}; each merged marker shows its count)."
    )


def map_trustworthiness(features: np.ndarray, coords: np.ndarray, n_neighbors: int = 5) -> float:
    """How well the map keeps the features' nearest neighbours (cosine), in [0, 1]; NaN when too few points.

    scikit-learn's ``trustworthiness`` (Venna & Kaski 2001) with ``k = min(n_neighbors, N/2 − 1)``.
    """
    from sklearn.manifold import trustworthiness

    n = len(features)
    k = min(n_neighbors, n // 2 - 1)
    if k < 1:
        return float("nan")
    return float(
        trustworthiness(_unit(features), np.asarray(coords, dtype=np.float64), n_neighbors=k, metric="cosine")
    )


def map_figure(coords: np.ndarray, meta: pd.DataFrame, *, title: str = "") -> go.Figure:
    """The map: prompts as circles (positive) and crosses (negative), sized by how many are merged;
    ID images coloured by class (one trace per class up to `MAX_CLASS_TRACES` classes, else one trace
    on a colour scale), OOD images by set; ``customdata`` = the run's row (-1: prompt)."""
    if len(coords) != len(meta):
        raise ValueError(f"{len(coords)} coordinates for {len(meta)} rows of meta")
    fig = go.Figure()
    groups = meta["group"].to_numpy()
    id_classes = list(dict.fromkeys(meta.loc[meta["group"].str.startswith("ID: "), "class_name"]))
    ood_sets = list(dict.fromkeys(g for g in groups if str(g).startswith("OOD: ")))
    ood_colours = ["#555555", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22"]
    if len(id_classes) > MAX_CLASS_TRACES:  # one trace, coloured by class index: no legend of 1,000 entries
        groups = np.where(meta["group"].str.startswith("ID: "), "ID images (colour: class)", groups)
    for group in dict.fromkeys(groups):
        mask = groups == group
        part = meta[mask]
        if part["kind"].iat[0] == "image":
            if group == "ID images (colour: class)":
                index = [id_classes.index(c) for c in part["class_name"]]
                marker = {
                    "symbol": "circle",
                    "size": 6,
                    "opacity": 0.75,
                    "color": index,
                    "colorscale": "Turbo",
                }
            elif str(group).startswith("ID: "):
                colour = PALETTE[id_classes.index(part["class_name"].iat[0]) % len(PALETTE)]
                marker = {"symbol": "circle", "size": 6, "opacity": 0.75, "color": colour}
            else:
                colour = ood_colours[ood_sets.index(group) % len(ood_colours)]
                marker = {"symbol": "diamond", "size": 6, "opacity": 0.75, "color": colour}
        else:
            marker = {
                "symbol": "circle" if part["kind"].iat[0] == "positive" else "x",
                "size": (10 + 4 * np.log2(part["count"].to_numpy())).tolist(),
                "line": {"width": 1, "color": "black"},
            }
        fig.add_trace(
            go.Scatter(
                x=coords[mask, 0], y=coords[mask, 1], mode="markers+text" if part["kind"].iat[0] != "image" else "markers",
                name=str(group), text=[f"×{c}" if c > 1 else "" for c in part["count"]], textposition="top center",
                hovertext=part["hover"], hoverinfo="text", customdata=part["row"].to_numpy(), marker=marker,
            )
        )  # fmt: skip
    fig.update_layout(
        title=title or None,
        xaxis={"showticklabels": False, "title": ""},
        yaxis={"showticklabels": False, "title": ""},
        legend={"orientation": "v", "x": 1.02, "y": 1},
        margin={"t": 40 if title else 10, "b": 10},
        clickmode="event+select",
        dragmode="pan",
        height=560,
    )
    return fig
