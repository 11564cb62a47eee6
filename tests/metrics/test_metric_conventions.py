"""Named metric conventions: the issue's examples and plain float64 references (loops over images)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from negprompt import metric_conventions as C
from negprompt import metrics as M


def _hendrycks_reference(id_s, ood_s, recall=0.95):
    """Recall closest to ``recall`` over the thresholds t >= min(ID) (up to full recall), lowest first."""
    best, best_gap = None, np.inf
    for t in sorted({v for v in np.r_[id_s, ood_s].tolist() if v >= min(id_s)}):
        gap = abs(sum(s >= t for s in id_s) / len(id_s) - recall)
        if gap < best_gap:  # on equal gaps the lower threshold, met first, stays
            best, best_gap = sum(s >= t for s in ood_s) / len(ood_s), gap
    return best


def _strict_auroc_reference(id_s, ood_s):
    return sum(float(a > b) for a in id_s for b in ood_s) / (len(id_s) * len(ood_s))


def test_issue_examples():
    id_s, ood_s = np.arange(1.0, 21.0), np.array([1.5])
    assert M.compute(id_s, ood_s)["fpr95"] == 0.0
    assert M.compute(id_s, ood_s, convention="negprompt-official")["fpr95"] == 1.0
    id_s, ood_s = np.array([1, 1, 1, 1, 0.0]), np.array([1, 0, 0.0])
    assert M.compute(id_s, ood_s)["auroc"] == pytest.approx(11 / 15)
    assert M.compute(id_s, ood_s, convention="negprompt-official")["auroc"] == pytest.approx(8 / 15)
    assert round(M.compute(id_s, ood_s)["auroc"], 3) == 0.733
    assert round(C.metric_ood_curves(id_s, ood_s)["auroc"], 3) == 0.533


def test_default_is_ours_and_unknown_convention():
    rng = np.random.default_rng(0)
    id_s, ood_s = rng.normal(1, 1, 50), rng.normal(0, 1, 40)
    assert M.compute(id_s, ood_s) == M.ood_metrics(id_s, ood_s)
    with pytest.raises(ValueError, match="openood"):
        M.compute(id_s, ood_s, convention="sklearn")
    assert set(C.CONVENTIONS) == {"ours", "negprompt-official", "openood"}


@pytest.mark.parametrize("seed", range(12))
def test_official_conventions_match_plain_references(seed):
    rng = np.random.default_rng(seed)
    n_id, n_ood = rng.integers(1, 30), rng.integers(1, 30)
    # few distinct values, so that ties between and within the sets are common
    id_s = rng.integers(0, 6, n_id).astype(np.float64)
    ood_s = rng.integers(-2, 4, n_ood).astype(np.float64)
    official = M.compute(id_s, ood_s, convention="negprompt-official")
    assert official["auroc"] == pytest.approx(_strict_auroc_reference(id_s, ood_s), abs=1e-12)
    assert official["fpr95"] == pytest.approx(_hendrycks_reference(id_s, ood_s), abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_openood_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    ties = seed % 2 == 0
    n_id, n_ood = rng.integers(2, 60), rng.integers(2, 60)
    id_s, ood_s = rng.normal(0.5, 1, n_id), rng.normal(0, 1, n_ood)
    if ties:
        id_s, ood_s = np.round(id_s), np.round(ood_s)
    labels = np.r_[np.ones(n_id), np.zeros(n_ood)]
    conf = np.r_[id_s, ood_s]
    fpr, tpr, _ = roc_curve(1 - labels, -conf)  # OOD positive, drop_intermediate=True
    p_in, r_in, _ = precision_recall_curve(labels, conf)
    p_out, r_out, _ = precision_recall_curve(1 - labels, -conf)
    got = M.compute(id_s, ood_s, convention="openood")
    assert got["fpr95"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)
    assert got["auroc"] == pytest.approx(auc(fpr, tpr), abs=1e-12)
    assert got["aupr_in"] == pytest.approx(auc(r_in, p_in), abs=1e-12)
    assert got["aupr_out"] == pytest.approx(auc(r_out, p_out), abs=1e-12)


def test_metric_ood_aupr_against_a_stepwise_walk():
    """AUPR-In/Out of metric_ood: a literal walk over the sorted images, one image per step."""
    rng = np.random.default_rng(3)
    id_s, ood_s = rng.integers(0, 5, 17).astype(float), rng.integers(-1, 3, 11).astype(float)
    known, novel = sorted(id_s), sorted(ood_s)
    tp, fp, k, n = [len(known)], [len(novel)], 0, 0
    while k < len(known) or n < len(novel):
        if k < len(known) and (n == len(novel) or not novel[n] < known[k]):
            k += 1
        else:
            n += 1
        tp.append(len(known) - k)
        fp.append(len(novel) - n)
    pts_in = [(1.0, 0.5)] + [(t / len(known), t / (t + f)) for t, f in zip(tp, fp) if t + f] + [(0.0, 0.0)]
    ref_in = sum((a[0] - b[0]) * (a[1] + b[1]) / 2 for a, b in zip(pts_in, pts_in[1:]))
    out = [((len(novel) - f), (len(known) - t) + (len(novel) - f), f) for t, f in zip(tp, fp)]
    pts_out = [(0.0, 0.0)] + [(1 - f / len(novel), a / d) for a, d, f in out if d] + [(1.0, 0.5)]
    ref_out = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(pts_out, pts_out[1:]))
    got = C.metric_ood_curves(id_s, ood_s)
    assert got["aupr_in"] == pytest.approx(ref_in, abs=1e-12)
    assert got["aupr_out"] == pytest.approx(ref_out, abs=1e-12)


def test_trapezoid_and_average_precision_differ_but_agree_without_overlap():
    id_s, ood_s = np.array([3.0, 1.0]), np.array([2.0])
    # AP: (1/2)·1 + (1/2)·(2/3) = 5/6; trapezoid: (1/2)(1 + 1)/2 + (1/2)(1/2 + 2/3)/2 = 19/24
    assert M.aupr_in(id_s, ood_s) == pytest.approx(5 / 6)
    assert C.aupr_trapezoid(id_s, ood_s) == pytest.approx(19 / 24)
    assert C.aupr_trapezoid([2.0, 3.0], [0.0, 1.0]) == pytest.approx(1.0)


def test_fpr_conventions_table():
    import pandas as pd

    id_s, a, b = np.arange(1.0, 21.0), np.array([1.5, 30.0]), np.array([0.5, 2.5, 3.0])
    scores = pd.DataFrame(
        {
            "split": ["id"] * 20 + ["ood"] * 5,
            "dataset": ["ID"] * 20 + ["A", "A", "B", "B", "B"],
            "m/s": np.r_[id_s, a, b],
        }
    )
    text = C.fpr_conventions_table(scores, [("m", "s"), ("absent", "s")])
    assert "absent" not in text
    ours = np.mean([M.fpr_at_tpr(id_s, a), M.fpr_at_tpr(id_s, b)])
    theirs = np.mean([C.fpr95_ood_positive_dropped(id_s, a), C.fpr95_ood_positive_dropped(id_s, b)])
    assert f"FPR95 {100 * ours:.2f} (ID positive) | FPR@95 {100 * theirs:.2f}" in text
    # OpenOOD catches every OOD image: ID at or below 30 (all 20) and at or below 3 (3 of 20)
    assert ours == pytest.approx((0.5 + 2 / 3) / 2) and theirs == pytest.approx((1.0 + 3 / 20) / 2)
