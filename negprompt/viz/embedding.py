"""2-D maps of prompt (and image) features: PCA, UMAP, their figure, and the context-token table.

UMAP comes from ``umap-learn`` and is imported only when called. Its nearest-neighbour graph is
computed here exactly (cosine, chunked matrix products), which is much faster than umap-learn's
own small-data path and avoids compiling its approximate search; on 2 CPU cores a map of
3,000 prompts of 512 dimensions takes about a second once umap-learn's numba functions are
compiled (the first call in a process compiles them: about 5 s, see `warm_umap`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "context_token_table",
    "embedding_figure",
    "exact_knn",
    "pca_project",
    "prompt_points",
    "umap_project",
    "warm_umap",
]


def pca_project(x: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Project rows onto their top principal components (deterministic signs).

    Args:
        x: [N, D] features.
        n_components: output dimensions (clipped to min(N, D)).

    Returns:
        [N, n_components] float32 coordinates, centred.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"pca_project needs a non-empty [N, D] array, got shape {x.shape}")
    k = max(1, min(n_components, x.shape[0], x.shape[1]))
    centred = x - x.mean(axis=0, keepdims=True)
    _, vecs = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues; D x D is small
    basis = vecs[:, ::-1][:, :k]
    basis *= np.where(basis[np.argmax(np.abs(basis), axis=0), np.arange(k)] < 0, -1.0, 1.0)
    out = centred @ basis
    if out.shape[1] < n_components:
        out = np.pad(out, ((0, 0), (0, n_components - out.shape[1])))
    return out.astype(np.float32)


def exact_knn(x: np.ndarray, k: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours by cosine distance (each point is its own first neighbour).

    Args:
        x: [N, D] features (normalised here).
        k: neighbours per point, <= N.
        chunk: rows per matrix product (memory ~ chunk x N floats).

    Returns:
        ``(indices [N, k] int32, distances [N, k] float32)``, nearest first; distance = 1 - cos.
    """
    x = np.asarray(x, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, {n}], got {k}")
    idx = np.empty((n, k), dtype=np.int32)
    dist = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, chunk):
        sims = x[start : start + chunk] @ x.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = np.inf  # a point is its own nearest neighbour, despite rounding
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        part_sims = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        idx[start : start + chunk] = np.take_along_axis(part, order, axis=1)
        best = np.take_along_axis(part_sims, order, axis=1)
        best[:, 0] = 1.0
        dist[start : start + chunk] = np.clip(1.0 - best, 0.0, 2.0)
    return idx, dist


def umap_project(
    x: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_epochs: int = 200,
    pca_dims: int = 50,
    seed: int = 0,
) -> np.ndarray:
    """UMAP of the rows of ``x`` to 2-D, on a cosine k-NN graph, initialised from PCA.

    McInnes, Healy, Melville, "UMAP: Uniform Manifold Approximation and Projection", 2018. The
    rows are first reduced to ``pca_dims`` principal components (for the initial layout); the
    neighbour graph uses exact cosine distances of the full features (`exact_knn`).

    Args:
        x: [N, D] features.
        n_neighbors: neighbourhood size (clipped to N - 1).
        min_dist: UMAP's minimum distance in the map.
        n_epochs: optimisation epochs (200 is plenty for a few thousand points).
        pca_dims: dimensions kept before the layout.
        seed: random state (fixed: maps are reproducible).

    Returns:
        [N, 2] float32 coordinates. With fewer than 4 rows, the PCA projection instead.
    """
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    if n < 4:
        return pca_project(x, 2)
    reduced = pca_project(x, min(pca_dims, x.shape[1], n))
    k = max(2, min(n_neighbors, n - 1))
    knn = exact_knn(x, k)
    import umap  # heavy (numba): imported on first use only

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs with random_state; no search index for transform
        model = umap.UMAP(
            n_components=2,
            n_neighbors=k,
            min_dist=min_dist,
            n_epochs=n_epochs,
            init="pca",
            low_memory=True,
            random_state=seed,
            precomputed_knn=knn,
        )
        out = model.fit_transform(reduced)
    return np.asarray(out, dtype=np.float32)


def warm_umap() -> float:
    """Compile umap-learn's numba functions on a tiny map so the first real map is fast.

    Returns:
        The seconds it took (about 5 s the first time in a process, then milliseconds).
    """
    import time

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    umap_project(rng.normal(size=(24, 8)).astype(np.float32), n_neighbors=5, n_epochs=5)
    return time.perf_counter() - start


def prompt_points(
    pos: np.ndarray,
    neg: np.ndarray | None,
    class_names: Sequence[str],
    *,
    image_features: np.ndarray | None = None,
    image_meta: pd.DataFrame | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Stack positive, negative (and image) features into one matrix with a row description.

    Args:
        pos: [C, D] positive prompt features.
        neg: [C, M, D] negative prompt features, or None.
        class_names: C class names.
        image_features: [N, D] image features to place in the same map, or None.
        image_meta: N rows with ``dataset`` and ``label_name`` describing ``image_features``.

    Returns:
        ``(features [P, D] float32, meta)`` where meta has columns ``group`` (``positive``,
        ``negative m`` (1-based), ``image: <dataset>``), ``class_name`` and ``hover``.
    """
    pos = np.asarray(pos, dtype=np.float32)
    n_cls = pos.shape[0]
    if len(class_names) != n_cls:
        raise ValueError(f"{len(class_names)} class names for {n_cls} positive prompts")
    names = [str(c) for c in class_names]
    blocks = [pos]
    meta = [
        pd.DataFrame({"group": "positive", "class_name": names, "hover": [f"{c} · positive" for c in names]})
    ]
    if neg is not None:
        neg = np.asarray(neg, dtype=np.float32)
        for m in range(neg.shape[1]):
            blocks.append(neg[:, m])
            kind = f"negative {m + 1}"
            meta.append(
                pd.DataFrame({"group": kind, "class_name": names, "hover": [f"{c} · {kind}" for c in names]})
            )
    if image_features is not None and len(image_features):
        if image_meta is None or len(image_meta) != len(image_features):
            raise ValueError("image_meta must describe every row of image_features")
        blocks.append(np.asarray(image_features, dtype=np.float32))
        labels = image_meta.get("label_name", pd.Series([""] * len(image_meta))).fillna("").astype(str)
        datasets = image_meta["dataset"].astype(str)
        meta.append(
            pd.DataFrame(
                {
                    "group": ("image: " + datasets).to_numpy(),
                    "class_name": labels.to_numpy(),
                    "hover": (datasets + " image " + labels).to_numpy(),
                }
            )
        )
    return np.concatenate(blocks, axis=0), pd.concat(meta, ignore_index=True)


_SYMBOLS = {"positive": "circle", "negative": "x"}


def coinciding_groups(
    coords: np.ndarray, meta: pd.DataFrame, tol: float = 1e-3
) -> list[tuple[str, str, int]]:
    """Prompt groups drawn exactly on top of a later group, which would hide them in a scatter.

    Two prompt groups (``positive``, ``negative m``) coincide for a class when their points are
    closer than ``tol`` × the map's extent (the largest coordinate range). Identical negative
    contexts (M copies that never separated) look like this.

    Returns:
        ``(hidden group, group drawn above it, number of classes that coincide)`` for every pair
        with at least one coinciding class, in drawing order.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.size == 0:
        return []
    extent = float(np.ptp(coords, axis=0).max()) or 1.0
    groups = meta["group"].to_numpy()
    prompts = [g for g in dict.fromkeys(groups) if not str(g).startswith("image")]
    rows = {g: np.flatnonzero(groups == g) for g in prompts}
    found = []
    for i, low in enumerate(prompts):
        for high in prompts[i + 1 :]:
            a, b = rows[low], rows[high]
            same_classes = (
                len(a) == len(b)
                and (meta["class_name"].to_numpy()[a] == meta["class_name"].to_numpy()[b]).all()
            )
            if not same_classes:
                continue
            n = int((np.linalg.norm(coords[a] - coords[b], axis=1) <= tol * extent).sum())
            if n:
                found.append((str(low), str(high), n))
    return found


def embedding_figure(coords: np.ndarray, meta: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Scatter of a 2-D map, one trace per ``meta.group`` (positive, negative m, image sets).

    Prompt groups hidden under a later group (`coinciding_groups`) are named in a note on the
    figure, so that a series that seems missing is explained.

    Args:
        coords: [P, 2] map coordinates (from `pca_project` or `umap_project`).
        meta: P rows with ``group`` and ``hover`` (from `prompt_points`).
        title: figure title.
    """
    if len(coords) != len(meta):
        raise ValueError(f"{len(coords)} coordinates for {len(meta)} rows of meta")
    fig = go.Figure()
    groups = meta["group"].to_numpy()
    for group in dict.fromkeys(groups):
        mask = groups == group
        is_image = group.startswith("image")
        symbol = "circle" if is_image else _SYMBOLS["positive" if group == "positive" else "negative"]
        fig.add_trace(
            go.Scatter(
                x=coords[mask, 0],
                y=coords[mask, 1],
                mode="markers",
                name=group,
                text=meta.loc[mask, "hover"],
                hoverinfo="text",
                marker={"symbol": symbol, "size": 4 if is_image else 8, "opacity": 0.35 if is_image else 0.9},
            )
        )
    hidden = coinciding_groups(coords, meta)
    for group, above, n in hidden:
        total = int((groups == group).sum())
        fig.add_annotation(
            text=f"'{group}' lies under '{above}': same point for {n} of {total} classes",
            xref="paper", yref="paper", x=0.0, y=1.0, yshift=2 + 16 * hidden.index((group, above, n)),
            xanchor="left", yanchor="bottom", showarrow=False, font={"size": 12},
        )  # fmt: skip
    fig.update_layout(
        title=title or None,
        xaxis={"showticklabels": False, "title": ""},
        yaxis={"showticklabels": False, "title": ""},
        legend={"orientation": "h", "y": -0.1},
        margin={"t": (40 if title else 10) + 18 * len(hidden), "b": 10},
    )
    return fig


def _byte_of_char() -> dict[str, int]:
    """The inverse of byte-level BPE's byte → printable character table (CLIP, GPT-2).

    Printable Latin-1 bytes (``!``–``~``, ``¡``–``¬``, ``®``–``ÿ``) stand for themselves; the other
    bytes, in increasing order, are written as the characters ``chr(256 + n)``, n = 0, 1, …
    """
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {chr(b): b for b in kept}
    extra = (b for b in range(256) if b not in table.values())
    table.update({chr(256 + n): b for n, b in enumerate(extra)})
    return table


_BYTE_OF_CHAR = _byte_of_char()


def readable_token(token: str) -> str:
    """A byte-level BPE token as readable text: ``"ðŁĺį"`` → ``"😍"``, ``"cat</w>"`` → ``"cat"``.

    Characters outside the byte table are kept as they are; bytes that are not valid UTF-8 on their
    own (part of a longer character) show as ``�``.
    """
    token = token.replace("</w>", "")
    if not all(c in _BYTE_OF_CHAR for c in token):
        return token
    return bytes(_BYTE_OF_CHAR[c] for c in token).decode("utf-8", errors="replace")


def context_token_table(context_tokens: dict, method: str, k: int = 5) -> pd.DataFrame:
    """The nearest vocabulary tokens of each learned context vector of ``method``.

    Args:
        context_tokens: the run's ``context_tokens.json`` ({method: {"positive": [[{"token",
            "similarity"}, ...] per vector], "negative": [[[...] per vector] per set]}}).
        method: the method to show.
        k: tokens per vector.

    Returns:
        One row per context vector: ``prompt`` (``positive`` / ``negative m``), ``vector``
        (1-based) and ``nearest tokens`` ("token (similarity)", most similar first; byte-level BPE
        tokens decoded to readable text by `readable_token`).
    """
    entry = context_tokens.get(method)
    if not entry:
        return pd.DataFrame(columns=["prompt", "vector", "nearest tokens"])

    def rows(kind: str, vectors: list) -> list[dict]:
        out = []
        for v, tokens in enumerate(vectors, start=1):
            best = sorted(tokens, key=lambda t: -float(t.get("similarity", 0.0)))[:k]
            text = ", ".join(
                f"{readable_token(str(t['token']))} ({float(t.get('similarity', 0.0)):.2f})" for t in best
            )
            out.append({"prompt": kind, "vector": v, "nearest tokens": text})
        return out

    records = rows("positive", entry.get("positive") or [])
    for m, vectors in enumerate(entry.get("negative") or [], start=1):
        records += rows(f"negative {m}", vectors)
    return pd.DataFrame.from_records(records, columns=["prompt", "vector", "nearest tokens"])
