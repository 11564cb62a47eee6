"""Other projects' OOD metric conventions, by name, so that our numbers can be set beside theirs.

ID is the positive class and higher scores mean more in-distribution, as everywhere in negprompt.
Three conventions are offered by `negprompt.metrics.compute`:

``"ours"`` (the default; `negprompt.metrics.ood_metrics`)
    FPR95 at the largest threshold keeping >= 95% of ID; AUROC with ties counted one half; AUPR as
    average precision (step-wise).

``"negprompt-official"`` (the NegPrompt and MCM / GL-MCM evaluation code)
    FPR95 by Hendrycks' ``fpr_and_fdr_at_recall`` (`fpr_at_recall_closest`): the ROC point whose
    recall is *closest* to 95%, ties between points resolved towards the lowest threshold. AUROC,
    AUPR-In and AUPR-Out by the open-set ``metric_ood`` routine (`metric_ood_curves`): a curve with
    one step per image in which an ID image tied with an OOD image ranks *below* it, so ties count 0.

``"openood"`` (OpenOOD v1.5, ``openood/evaluators/metrics.py``)
    "FPR@95" with OOD as the positive class (`fpr95_ood_positive_dropped`), the AUROC of
    scikit-learn (equal to ours), and AUPR-In / AUPR-Out by the trapezoid rule over the
    precision–recall curve (`aupr_trapezoid`).

Where they differ (the examples are tests in ``tests/metrics/test_metric_conventions.py``):

- FPR95 with ties: ID = 1…20, OOD = [1.5]: ours 0.0 (threshold 2 keeps 19/20 = 95% of ID), the
  official 1.0 (recall 19/20 is reached at threshold 2 and at threshold 1.5; the lower one wins).
- AUROC with ties: ID = [1, 1, 1, 1, 0], OOD = [1, 0, 0]: ours 11/15 = 0.733 (ties ½), ``metric_ood``
  8/15 = 0.533 (ties 0).
- AUPR: the trapezoid rule interpolates precision linearly between operating points, average
  precision holds it constant; on real score sets the two differ by up to about 0.01.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from negprompt.metrics import _accepted_counts, _pair, auroc

__all__ = [
    "CONVENTIONS",
    "aupr_trapezoid",
    "convention_metrics",
    "fpr95_ood_positive_dropped",
    "fpr_at_recall_closest",
    "metric_ood_curves",
]

CONVENTIONS: dict[str, str] = {
    "ours": "negprompt: FPR95 (ID positive, >= 95% of ID kept), AUROC ties ½, AUPR = average precision",
    "negprompt-official": (
        "NegPrompt / MCM code: FPR95 at the recall closest to 95% (Hendrycks' fpr_and_fdr_at_recall), "
        "AUROC / AUPR of metric_ood (ID tied with OOD ranks below it)"
    ),
    "openood": (
        "OpenOOD v1.5: FPR@95 with OOD positive (fraction of ID rejected at 95% of OOD caught), "
        "AUROC as ours, AUPR by the trapezoid rule"
    ),
}
"""Convention name -> one-line description (printed beside tables that use it)."""


def fpr_at_recall_closest(id_scores: ArrayLike, ood_scores: ArrayLike, recall: float = 0.95) -> float:
    """FPR at the ROC point whose recall (TPR of ID) is closest to ``recall`` (Hendrycks et al.).

    The operating points are the distinct scores t_1 > t_2 > … taken as thresholds (accept s >= t),
    up to the first one reaching full recall; R_k = TP_k / n_id and FPR_k = FP_k / n_ood. The chosen
    point is k* = argmin_k |R_k − recall|, ties between points broken towards the *lowest*
    threshold. Returns FPR_{k*}. Used by the MCM, GL-MCM and NegPrompt evaluation code
    (``fpr_and_fdr_at_recall``, Hendrycks, Mazeika, Dietterich, ICLR 2019).

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID.
        ood_scores: [N_ood] scores of OOD images.
        recall: the target recall in (0, 1].
    """
    if not 0.0 < recall <= 1.0:
        raise ValueError(f"recall must lie in (0, 1], got {recall}")
    pos, neg = _pair(id_scores, ood_scores)
    tp, fp = _accepted_counts(pos, neg)
    stop = int(np.searchsorted(tp, tp[-1]))  # the first point at full recall
    tp, fp = tp[: stop + 1][::-1], fp[: stop + 1][::-1]  # lowest threshold first
    gap = np.abs(tp / pos.size - recall)
    return float(fp[int(np.argmin(gap))] / neg.size)


def metric_ood_curves(id_scores: ArrayLike, ood_scores: ArrayLike) -> dict[str, float]:
    """AUROC, AUPR-In and AUPR-Out as the open-set ``metric_ood`` routine computes them.

    All images sorted ascending, an ID image before an OOD image of the same score; the threshold
    rises past one image at a time, so after step l the accepted counts are TP_l (ID left) and FP_l
    (OOD left), l = 0 … n_id + n_ood (TP_0 = n_id, FP_0 = n_ood). With R_l = TP_l / n_id,
    F_l = FP_l / n_ood and trapezoids over consecutive points:

    - AUROC = ∫ (1 − F) dR over the points (1, 1), (R_l, F_l), (0, 0); equal to P(s_id > s_ood),
      ties counted 0;
    - AUPR-In = ∫ P dR with P_l = TP_l / (TP_l + FP_l), over the points with TP_l + FP_l > 0, the
      curve opened at (R, P) = (1, 0.5) and closed at (0, 0);
    - AUPR-Out: the same for OOD, P'_l = (n_ood − FP_l) / (n_id − TP_l + n_ood − FP_l) against
      1 − F_l, opened at (0, 0) and closed at (1, 0.5).

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID.
        ood_scores: [N_ood] scores of OOD images.

    Returns:
        ``{"auroc", "aupr_in", "aupr_out"}``, fractions in [0, 1].
    """
    pos, neg = _pair(id_scores, ood_scores)
    n_k, n_n = pos.size, neg.size
    scores = np.concatenate([pos, neg])
    is_ood = np.r_[np.zeros(n_k), np.ones(n_n)]
    order = np.lexsort((is_ood, scores))  # ascending score; ID first among ties
    tp = np.r_[n_k, n_k - np.cumsum(1.0 - is_ood[order])]
    fp = np.r_[n_n, n_n - np.cumsum(is_ood[order])]
    tpr = np.r_[1.0, tp / n_k, 0.0]
    fpr = np.r_[1.0, fp / n_n, 0.0]
    result = {"auroc": -np.trapezoid(1.0 - fpr, tpr)}
    denom = tp + fp
    keep = np.r_[True, denom > 0, True]
    p_in = np.r_[0.5, tp / np.where(denom > 0, denom, 1.0), 0.0]
    result["aupr_in"] = -np.trapezoid(p_in[keep], tpr[keep])
    denom = (n_k - tp) + (n_n - fp)
    keep = np.r_[True, denom > 0, True]
    p_out = np.r_[0.0, (n_n - fp) / np.where(denom > 0, denom, 1.0), 0.5]
    result["aupr_out"] = np.trapezoid(p_out[keep], 1.0 - fpr[keep])
    return {k: float(np.clip(v, 0.0, 1.0)) for k, v in result.items()}


def aupr_trapezoid(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """AUPR-In by the trapezoid rule over the precision–recall curve (OpenOOD v1.5), ID positive.

    Points (R_k, P_k) at every distinct threshold t_1 > t_2 > … (accept s >= t_k), R_k = TP_k / n_id,
    P_k = TP_k / (TP_k + FP_k), plus (R_0, P_0) = (0, 1):
    AUPR = Σ_k (R_k − R_{k−1}) · (P_k + P_{k−1}) / 2. Equals scikit-learn's
    ``auc(*precision_recall_curve(labels, scores)[1::-1])``; AUPR-Out is
    ``aupr_trapezoid(-ood_scores, -id_scores)``.

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID.
        ood_scores: [N_ood] scores of OOD images.
    """
    pos, neg = _pair(id_scores, ood_scores)
    tp, fp = _accepted_counts(pos, neg)
    recall = np.r_[0.0, tp / pos.size]
    precision = np.r_[1.0, tp / (tp + fp)]
    return float(np.clip(np.trapezoid(precision, recall), 0.0, 1.0))


def fpr95_ood_positive_dropped(id_scores: ArrayLike, ood_scores: ArrayLike, tpr: float = 0.95) -> float:
    """OpenOOD's "FPR@95": OOD positive, on scikit-learn's ROC curve with collinear points dropped.

    With OOD positive (ranked by −score), the ROC points at the distinct thresholds are thinned as
    ``roc_curve(drop_intermediate=True)`` does: a point is dropped when both the FP and the TP
    counts have zero second difference there (it lies inside a straight segment). The result is
    the FPR (fraction of ID rejected) of the first remaining point with TPR >= ``tpr``. Without
    the thinning this is `negprompt.metrics.fpr95_ood_positive`; they differ only on tied scores.

    Args:
        id_scores: [N_id] scores of ID images, higher = more ID (negated internally).
        ood_scores: [N_ood] scores of OOD images.
        tpr: the fraction of OOD images to catch, in (0, 1].
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must lie in (0, 1], got {tpr}")
    pos, neg = _pair(id_scores, ood_scores)
    tp, fp = _accepted_counts(-neg, -pos)  # OOD positive
    if tp.size > 2:
        inner = (np.diff(fp, 2) != 0) | (np.diff(tp, 2) != 0)
        keep = np.r_[True, inner, True]
        tp, fp = tp[keep], fp[keep]
    rates = np.r_[0.0, tp / neg.size]
    return float(np.r_[0.0, fp / pos.size][int(np.argmax(rates >= tpr))])


def convention_metrics(id_scores: ArrayLike, ood_scores: ArrayLike, convention: str) -> dict[str, float]:
    """``{"fpr95", "auroc", "aupr_in", "aupr_out"}`` under a named convention (see `CONVENTIONS`)."""
    from negprompt.metrics import ood_metrics

    if convention not in CONVENTIONS:
        raise ValueError(f"unknown metric convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    if convention == "ours":
        return ood_metrics(id_scores, ood_scores)
    if convention == "negprompt-official":
        curves = metric_ood_curves(id_scores, ood_scores)
        return {"fpr95": fpr_at_recall_closest(id_scores, ood_scores), **curves}
    pos, neg = _pair(id_scores, ood_scores)
    return {
        "fpr95": fpr95_ood_positive_dropped(pos, neg),
        "auroc": auroc(pos, neg),
        "aupr_in": aupr_trapezoid(pos, neg),
        "aupr_out": aupr_trapezoid(-neg, -pos),
    }


def fpr_conventions_table(scores, rows: list[tuple[str, str]]) -> str:
    """Both FPR conventions side by side: mean over OOD sets of ours (ID positive) and OpenOOD's.

    Args:
        scores: a per-image scores table (`negprompt.evaluate.Evaluation.scores`).
        rows: ``(method, score)`` pairs whose ``<method>/<score>`` columns to use (absent ones skipped).

    Returns:
        Text lines "method (score): FPR95 x% (ID positive) | FPR@95 y% (OOD positive, OpenOOD)".
    """
    is_id = (scores["split"] == "id").to_numpy()
    sets = list(dict.fromkeys(scores.loc[~is_id, "dataset"]))
    lines = ["FPR conventions, mean over the OOD sets (%):"]
    for method, score in rows:
        if f"{method}/{score}" not in scores.columns:
            continue
        col = scores[f"{method}/{score}"].to_numpy()
        ours, openood = [], []
        for name in sets:
            ood = col[(scores["dataset"] == name).to_numpy() & ~is_id]
            ours.append(convention_metrics(col[is_id], ood, "ours")["fpr95"])
            openood.append(convention_metrics(col[is_id], ood, "openood")["fpr95"])
        lines.append(
            f"  {method} ({score}): FPR95 {100 * np.mean(ours):.2f} (ID positive) | "
            f"FPR@95 {100 * np.mean(openood):.2f} (OOD positive, OpenOOD v1.5)"
        )
    return "\n".join(lines)
