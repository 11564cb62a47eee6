"""Thresholds, decision counts and the per-image decision table: numpy and pandas only.

Conventions (as in `negprompt.metrics`): higher score = more in-distribution; an image is
*accepted* (called ID) when ``score >= threshold`` and *rejected* (called OOD) otherwise.
A false positive is an OOD image accepted, a false negative an ID image rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from negprompt.metrics import roc_curve, threshold_at_tpr

__all__ = [
    "DECISION_FILTERS",
    "Rates",
    "decision_counts",
    "ood_class_breakdown",
    "decision_table",
    "page_slice",
    "rates_at",
    "roc_points",
    "slider_range",
    "threshold_at_tpr",
]

DECISION_FILTERS = {
    "all": "all images",
    "errors": "errors: false positives and false negatives",
    "fp": "false positives (OOD accepted)",
    "fn": "false negatives (ID rejected)",
    "accepted": "accepted as ID",
    "rejected": "rejected as OOD",
    "misclassified": "ID images with a wrong predicted class",
}
"""Names of the gallery filters of `decision_table`, with what they keep."""


@dataclass(frozen=True)
class Rates:
    """What a threshold does to one (ID, OOD) pair of score sets."""

    threshold: float
    tpr: float  # fraction of ID images accepted
    fpr: float  # fraction of OOD images accepted
    id_accepted: int
    id_rejected: int
    ood_accepted: int
    ood_rejected: int


def rates_at(id_scores: ArrayLike, ood_scores: ArrayLike, threshold: float) -> Rates:
    """TPR, FPR and counts at ``threshold`` (accept when score >= threshold); NaN rates for empty sets.

    Args:
        id_scores: [N_id] ID scores.
        ood_scores: [N_ood] OOD scores.
        threshold: the decision threshold.
    """
    pos = np.asarray(id_scores, dtype=np.float64).ravel()
    neg = np.asarray(ood_scores, dtype=np.float64).ravel()
    id_acc = int(np.count_nonzero(pos >= threshold))
    ood_acc = int(np.count_nonzero(neg >= threshold))
    return Rates(
        threshold=float(threshold),
        tpr=id_acc / pos.size if pos.size else float("nan"),
        fpr=ood_acc / neg.size if neg.size else float("nan"),
        id_accepted=id_acc,
        id_rejected=int(pos.size - id_acc),
        ood_accepted=ood_acc,
        ood_rejected=int(neg.size - ood_acc),
    )


def decision_counts(scores: pd.DataFrame, score_col: str, threshold: float) -> pd.DataFrame:
    """Images accepted and rejected per dataset at ``threshold``.

    Args:
        scores: the run's per-image table with columns ``dataset``, ``split`` and ``score_col``.
        score_col: the score column, e.g. ``"negprompt/negprompt"``.
        threshold: accept when score >= threshold.

    Returns:
        One row per dataset (ID set first, then OOD sets in order of appearance) with columns
        ``dataset, split, images, accepted, rejected, accepted_pct`` (in %, one decimal).
    """
    accepted = scores[score_col].to_numpy() >= threshold
    frame = pd.DataFrame({"dataset": scores["dataset"].to_numpy(), "split": scores["split"].to_numpy()})
    frame["accepted"] = accepted
    grouped = frame.groupby(["dataset", "split"], sort=False)["accepted"].agg(["size", "sum"]).reset_index()
    grouped.columns = ["dataset", "split", "images", "accepted"]
    grouped["accepted"] = grouped["accepted"].astype(int)
    grouped["rejected"] = grouped["images"] - grouped["accepted"]
    grouped["accepted_pct"] = (100.0 * grouped["accepted"] / grouped["images"]).round(1)
    grouped["_order"] = (grouped["split"] != "id").astype(int)
    return grouped.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


BREAKDOWN_COLUMNS = ("dataset", "ood_class", "images", "accepted", "accepted_pct", "mean_score", "auroc")


def ood_class_breakdown(scores: pd.DataFrame, score_col: str, threshold: float) -> pd.DataFrame:
    """How each OOD class fares: images accepted at ``threshold`` and AUROC against all ID images.

    Hard-OOD sets keep the class of every OOD image (column ``ood_class``); this table shows which
    held-out classes the detector confuses with the ID classes. ``accepted_pct`` is the class's
    false-positive rate at ``threshold`` (the FPR95 threshold gives per-class FPR95 terms) and
    ``auroc`` separates the whole ID set from that class alone (``accepted_pct`` in %, one decimal).

    Returns:
        One row per (OOD dataset, OOD class), most accepted first (ties: lower AUROC first), with
        columns `BREAKDOWN_COLUMNS`; empty when no OOD image carries a class.
    """
    if "ood_class" not in scores.columns:
        return pd.DataFrame(columns=list(BREAKDOWN_COLUMNS))
    is_id = (scores["split"] == "id").to_numpy()
    id_sorted = np.sort(scores.loc[is_id, score_col].to_numpy(dtype=np.float64))
    labelled = scores.loc[~is_id & scores["ood_class"].fillna("").astype(str).ne("").to_numpy()]
    values = labelled[score_col].to_numpy(dtype=np.float64)
    # Each OOD image's share of the AUROC pairs: ID images scoring above it, plus half the ties.
    # One sort of the ID scores serves every class (equal to metrics.auroc per class).
    below_or_equal = np.searchsorted(id_sorted, values, side="right")
    below = np.searchsorted(id_sorted, values, side="left")
    wins = (id_sorted.size - below_or_equal) + 0.5 * (below_or_equal - below)
    per_image = pd.DataFrame(
        {
            "dataset": labelled["dataset"].to_numpy(),
            "ood_class": labelled["ood_class"].to_numpy(),
            "score": values,
            "accepted": values >= threshold,
            "wins": wins,
        }
    )
    grouped = per_image.groupby(["dataset", "ood_class"], sort=False).agg(
        images=("score", "size"),
        accepted=("accepted", "sum"),
        mean_score=("score", "mean"),
        wins=("wins", "sum"),
    )
    rows = [
        {
            "dataset": dataset,
            "ood_class": name,
            "images": int(g.images),
            "accepted": int(g.accepted),
            "accepted_pct": 100.0 * g.accepted / g.images,
            "mean_score": float(g.mean_score),
            "auroc": g.wins / (g.images * id_sorted.size) if id_sorted.size else float("nan"),
        }
        for (dataset, name), g in grouped.iterrows()
    ]
    frame = pd.DataFrame(rows, columns=list(BREAKDOWN_COLUMNS))
    order = frame.sort_values(["accepted_pct", "auroc"], ascending=[False, True], kind="stable")
    return order.assign(accepted_pct=order["accepted_pct"].round(1)).reset_index(drop=True)


def roc_points(
    id_scores: ArrayLike, ood_scores: ArrayLike, max_points: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve (ID = positive) at every distinct threshold, thinned to about ``max_points``.

    Returns:
        ``(fpr, tpr)``, two [P] arrays from (0, 0) to (1, 1), non-decreasing.
    """
    fpr, tpr = roc_curve(id_scores, ood_scores)
    if tpr.size > max_points:
        keep = np.unique(np.r_[np.linspace(0, tpr.size - 1, max_points).astype(int), tpr.size - 1])
        tpr, fpr = tpr[keep], fpr[keep]
    return fpr, tpr


def slider_range(scores: ArrayLike, steps: int = 1000) -> tuple[float, float, float]:
    """``(low, high, step)`` for a threshold slider covering every score in ``steps`` steps."""
    arr = np.asarray(scores, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return 0.0, 1.0, 0.001
    low, high = float(arr.min()), float(arr.max())
    if high <= low:
        pad = max(abs(low) * 1e-3, 1e-6)
        low, high = low - pad, high + pad
    return low, high, (high - low) / steps


def decision_table(
    scores: pd.DataFrame,
    score_col: str,
    threshold: float,
    *,
    pred_col: str | None = None,
    kind: str = "all",
    datasets: Sequence[str] | None = None,
    classes: Sequence[int] | None = None,
    ood_classes: Sequence[str] | None = None,
    sort: str = "score_desc",
) -> pd.DataFrame:
    """Filter and sort the per-image table for a gallery (vectorised; images are never opened).

    Args:
        scores: the run's per-image table (``dataset``, ``split``, ``path``, ``label``, ...).
        score_col: the score column deciding acceptance.
        threshold: accept when score >= threshold.
        pred_col: the predicted-class column (``pred.<method>``), if any.
        kind: one of `DECISION_FILTERS`.
        datasets: keep only these datasets (None or empty = all).
        classes: keep only images whose true or predicted class is one of these (None or empty = all).
        ood_classes: keep only OOD images of these OOD classes (column ``ood_class``; None or
            empty = all).
        sort: ``score_desc``, ``score_asc``, ``margin`` (farthest from the threshold first: for
            errors, the most confident mistakes) or ``row`` (the order of the run).

    Returns:
        The kept rows with the original row number as column ``row`` and the added columns
        ``score``, ``accepted`` and ``pred`` (``-1`` without ``pred_col``).
    """
    if kind not in DECISION_FILTERS:
        raise ValueError(f"unknown filter {kind!r}; choose one of {sorted(DECISION_FILTERS)}")
    score = scores[score_col].to_numpy()
    accepted = score >= threshold
    is_id = scores["split"].to_numpy() == "id"
    label = scores["label"].to_numpy()
    pred = scores[pred_col].to_numpy() if pred_col else np.full(len(scores), -1)
    mask = np.ones(len(scores), dtype=bool)
    if kind == "fp":
        mask &= ~is_id & accepted
    elif kind == "fn":
        mask &= is_id & ~accepted
    elif kind == "errors":
        mask &= is_id != accepted
    elif kind == "accepted":
        mask &= accepted
    elif kind == "rejected":
        mask &= ~accepted
    elif kind == "misclassified":
        mask &= is_id & (pred != label)
    if datasets:
        mask &= scores["dataset"].isin(list(datasets)).to_numpy()
    if classes:
        wanted = np.asarray(list(classes))
        mask &= np.isin(label, wanted) | np.isin(pred, wanted)
    if ood_classes:
        if "ood_class" not in scores.columns:
            raise ValueError("this scores table has no 'ood_class' column to filter on")
        mask &= scores["ood_class"].isin(list(ood_classes)).to_numpy() & ~is_id
    rows = np.flatnonzero(mask)
    columns = [
        c for c in ("dataset", "split", "path", "label", "label_name", "ood_class") if c in scores.columns
    ]
    out = scores.iloc[rows][columns].copy()
    out.insert(0, "row", rows)
    out["score"] = score[rows]
    out["accepted"] = accepted[rows]
    out["pred"] = pred[rows]
    if sort == "score_desc":
        out = out.sort_values("score", ascending=False, kind="stable")
    elif sort == "score_asc":
        out = out.sort_values("score", ascending=True, kind="stable")
    elif sort == "margin":
        out = out.iloc[np.argsort(-np.abs(out["score"].to_numpy() - threshold), kind="stable")]
    elif sort != "row":
        raise ValueError(f"unknown sort {sort!r}; choose score_desc, score_asc, margin or row")
    return out.reset_index(drop=True)


def page_slice(n_items: int, page: int, page_size: int) -> tuple[slice, int]:
    """The slice of page ``page`` (1-based, clipped to the valid range) and the number of pages (>= 1)."""
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    n_pages = max(1, -(-n_items // page_size))
    page = min(max(1, int(page)), n_pages)
    start = (page - 1) * page_size
    return slice(start, min(start + page_size, n_items)), n_pages
