"""OOD detection metrics on scores where higher = more in-distribution. ID is the positive class.

Pure numpy functions of two 1-D score arrays, ``id_scores`` (in-distribution test images) and
``ood_scores`` (out-of-distribution images); all results are fractions in [0, 1]:

- `fpr_at_tpr` (FPR95): fraction of OOD images accepted as ID at the threshold keeping 95% of ID;
- `auroc`: area under the ROC curve, ties counted one half (Mann–Whitney U / (n_id · n_ood));
- `aupr_in` / `aupr_out`: average precision with ID / OOD as the positive class;
- `fpr95_ood_positive`: the OpenOOD / pytorch-ood "FPR@95" (OOD positive), under its own name;
- `accuracy`: top-1 accuracy of predicted class indices.

The conventions agree exactly with scikit-learn's ``roc_curve`` (``drop_intermediate=False``),
``roc_auc_score`` and ``average_precision_score`` on the same labels and scores, ties included.
Scores may be any real numbers (±inf rank as extremes); empty, non-1-D or NaN inputs raise
``ValueError``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "FPR_CONVENTION",
    "FPR_OOD_POSITIVE_CONVENTION",
    "MEAN_CONVENTION",
    "METRIC_NAMES",
    "accuracy",
    "aupr_in",
    "aupr_out",
    "auroc",
    "compute",
    "fpr95_ood_positive",
    "fpr_at_tpr",
    "ood_metrics",
]

FPR_CONVENTION = (
    "FPR95: fraction of OOD images accepted at the threshold keeping 95% of ID images (ID = positive)"
)
"""How the ``fpr95`` of every negprompt table is defined; printed beside tables and stored in runs."""

MEAN_CONVENTION = (
    '"mean" rows average the metric over the OOD sets (each set weighs the same); "pooled" counts '
    "all OOD images together"
)
"""How several OOD sets are summarised; stated beside every number that combines them."""

FPR_OOD_POSITIVE_CONVENTION = (
    "FPR95 (OOD positive, OpenOOD / pytorch-ood): fraction of ID images rejected at the threshold "
    "catching 95% of OOD images"
)
"""How `fpr95_ood_positive` is defined."""

METRIC_NAMES = ("fpr95", "auroc", "aupr_in", "aupr_out")
"""The keys of `ood_metrics`, in order."""


def _scores(x: ArrayLike, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of scores, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty; OOD metrics need at least one ID and one OOD score")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{what} must hold numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{what} contains {int(np.isnan(arr).sum())} NaN score(s); fix the scores first")
    return arr


def _pair(id_scores: ArrayLike, ood_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    return _scores(id_scores, "id_scores"), _scores(ood_scores, "ood_scores")


def _threshold(pos: np.ndarray, tpr: float) -> float:
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must lie in (0, 1], got {tpr}")
    pos_desc = np.sort(pos)[::-1]
    # TPR after accepting the k highest positives is k / n, computed as scikit-learn does.
    kept = np.arange(1, pos.size + 1, dtype=np.float64) / pos.size
    return float(pos_desc[int(np.argmax(kept >= tpr))])


def _fpr_at_tpr(pos: np.ndarray, neg: np.ndarray, tpr: float) -> float:
    """Fraction of ``neg`` with score >= thr, thr = the largest score keeping a fraction >= tpr of ``pos``."""
    return float(np.count_nonzero(neg >= _threshold(pos, tpr)) / neg.size)


def threshold_at_tpr(id_scores: ArrayLike, tpr: float = 0.95) -> float:
    """The score threshold keeping a fraction ``tpr`` of the ID images (the FPR95 threshold for 0.95).

    ``thr`` is the ID score at rank k = ceil(tpr · n_id) from the top, so that at least ``tpr`` of
    the ID images have score >= thr; `fpr_at_tpr` is the fraction of OOD scores >= thr.

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID.
        tpr: fraction of ID images to keep, in (0, 1].
    """
    return _threshold(_scores(id_scores, "id_scores"), tpr)


def fpr_at_tpr(id_scores: ArrayLike, ood_scores: ArrayLike, tpr: float = 0.95) -> float:
    """False-positive rate at a true-positive rate (FPR95 for tpr = 0.95), ID = positive.

    The threshold ``thr`` is the largest score such that at least a fraction ``tpr`` of the ID
    images have score >= thr. That is the ID score at rank k = ceil(tpr · n_id) from the top, so
    ties at ``thr`` are all kept, and the kept fraction may exceed ``tpr``. The result is the
    fraction of OOD images with score >= thr (accepted as ID; OOD images tied with ``thr`` count as
    accepted). This is the FPR of the first point of scikit-learn's
    ``roc_curve(labels, scores, drop_intermediate=False)`` with TPR >= tpr, without interpolation.

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID.
        ood_scores: [N_ood] scores of OOD images.
        tpr: the fraction of ID images to keep, in (0, 1].

    Returns:
        The FPR, a fraction in [0, 1].
    """
    pos, neg = _pair(id_scores, ood_scores)
    return _fpr_at_tpr(pos, neg, tpr)


def fpr95_ood_positive(id_scores: ArrayLike, ood_scores: ArrayLike, tpr: float = 0.95) -> float:
    """ "FPR@95" as OpenOOD and pytorch-ood define it: OOD = positive, higher = more OOD.

    The fraction of ID images rejected (−score >= thr) at the threshold that catches a fraction
    ``tpr`` of the OOD images, with the same tie rules as `fpr_at_tpr`, i.e.
    ``fpr_at_tpr(-ood_scores, -id_scores, tpr)``. Not comparable with negprompt's ``fpr95``.

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID (negated internally).
        ood_scores: [N_ood] scores of OOD images.
        tpr: the fraction of OOD images to catch, in (0, 1].
    """
    pos, neg = _pair(id_scores, ood_scores)
    return _fpr_at_tpr(-neg, -pos, tpr)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # rank of the last member of each group of tied values
    return (upper - (counts - 1) / 2.0)[inverse]


def auroc(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Area under the ROC curve with ID as the positive class.

    AUROC = P(s_id > s_ood) + ½ P(s_id = s_ood) = (R_id − n_id(n_id + 1)/2) / (n_id · n_ood),
    where R_id is the sum of the ID scores' average ranks among all scores (Mann–Whitney U).
    Equals scikit-learn's ``roc_auc_score`` (trapezoidal ROC area), ties included.

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID.
        ood_scores: [N_ood] scores of OOD images.

    Returns:
        A fraction in [0, 1]; 1 = every ID image scores above every OOD image, 0.5 = chance.
    """
    pos, neg = _pair(id_scores, ood_scores)
    ranks = _average_ranks(np.concatenate([pos, neg]))
    n_pos, n_neg = pos.size, neg.size
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(np.clip(u / (n_pos * n_neg), 0.0, 1.0))


def _accepted_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(tp, fp)``: positives and negatives with score >= t at each distinct score t, highest first."""
    scores = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-scores, kind="stable")
    scores, is_pos = scores[order], is_pos[order]
    last_of_group = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), scores.size - 1]
    tp = np.cumsum(is_pos)[last_of_group]
    return tp, (last_of_group + 1) - tp


def roc_curve(id_scores: ArrayLike, ood_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve, ID = positive: ``(fpr, tpr)`` at every distinct threshold, from (0, 0) to (1, 1).

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID.
        ood_scores: [N_ood] scores of OOD images.

    Returns:
        Two [P] non-decreasing arrays (P = number of distinct scores + 1).
    """
    pos, neg = _pair(id_scores, ood_scores)
    tp, fp = _accepted_counts(pos, neg)
    return np.r_[0.0, fp / neg.size], np.r_[0.0, tp / pos.size]


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> float:
    """AP = Σ_k (R_k − R_{k−1}) · P_k over the distinct thresholds, highest first (ties grouped)."""
    tp, fp = _accepted_counts(pos, neg)
    precision = tp / (tp + fp)
    new_tp = np.diff(np.r_[0.0, tp])  # recall gain × n_pos: exact integers
    return float(np.clip(np.sum(new_tp * precision) / pos.size, 0.0, 1.0))


def aupr_in(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Area under the precision–recall curve with ID as the positive class (average precision).

    AP = Σ_k (R_k − R_{k−1}) · P_k, where P_k and R_k are the precision and recall of accepting
    every image with score >= the k-th distinct score (step-wise, no interpolation; tied scores
    enter together). Equals scikit-learn's ``average_precision_score(labels, scores)``.

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID.
        ood_scores: [N_ood] scores of OOD images.

    Returns:
        A fraction in [0, 1]; its chance level is n_id / (n_id + n_ood).
    """
    pos, neg = _pair(id_scores, ood_scores)
    return _average_precision(pos, neg)


def aupr_out(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Area under the precision–recall curve with OOD as the positive class, ranked by −score.

    The average precision of `aupr_in` with the roles swapped: ``aupr_in(-ood_scores, -id_scores)``.

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID.
        ood_scores: [N_ood] scores of OOD images.

    Returns:
        A fraction in [0, 1]; its chance level is n_ood / (n_id + n_ood).
    """
    pos, neg = _pair(id_scores, ood_scores)
    return _average_precision(-neg, -pos)


def accuracy(pred: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy: the fraction of images whose predicted class index equals the label.

    Args:
        pred: [N] predicted class indices.
        labels: [N] true class indices.

    Returns:
        A fraction in [0, 1].
    """
    p, y = np.asarray(pred), np.asarray(labels)
    if p.ndim != 1 or y.ndim != 1:
        raise ValueError(f"pred and labels must be 1-D, got shapes {p.shape} and {y.shape}")
    if p.shape != y.shape:
        raise ValueError(f"pred has {p.size} entries but labels has {y.size}; they must align")
    if p.size == 0:
        raise ValueError("pred and labels are empty; accuracy needs at least one image")
    return float(np.mean(p == y))


def ood_metrics(
    id_scores: ArrayLike, ood_scores: ArrayLike, *, include_ood_positive: bool = False
) -> dict[str, float]:
    """All OOD metrics of one (ID set, OOD set) pair; ID = positive, see `FPR_CONVENTION`.

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID.
        ood_scores: [N_ood] scores of OOD images.
        include_ood_positive: also return ``fpr95_ood_positive`` (OpenOOD's FPR@95).

    Returns:
        ``{"fpr95", "auroc", "aupr_in", "aupr_out"}`` (plus ``"fpr95_ood_positive"`` if asked), each
        a fraction in [0, 1].
    """
    pos, neg = _pair(id_scores, ood_scores)
    result = {
        "fpr95": _fpr_at_tpr(pos, neg, 0.95),
        "auroc": auroc(pos, neg),
        "aupr_in": _average_precision(pos, neg),
        "aupr_out": _average_precision(-neg, -pos),
    }
    if include_ood_positive:
        result["fpr95_ood_positive"] = _fpr_at_tpr(-neg, -pos, 0.95)
    return result


def compute(id_scores: ArrayLike, ood_scores: ArrayLike, *, convention: str = "ours") -> dict[str, float]:
    """``{"fpr95", "auroc", "aupr_in", "aupr_out"}`` under a named metric convention.

    ``"ours"`` (default) is `ood_metrics`; ``"negprompt-official"`` (the NegPrompt / MCM code) and
    ``"openood"`` (OpenOOD v1.5) reproduce those projects' definitions, which differ on ties and in
    the AUPR rule; see `negprompt.metric_conventions` for the formulas and examples.
    """
    from negprompt.metric_conventions import convention_metrics

    return convention_metrics(id_scores, ood_scores, convention)
