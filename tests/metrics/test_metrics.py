"""Tests of negprompt.metrics: hand-computed cases, agreement with scikit-learn, properties, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from negprompt import metrics as M

# --------------------------------------------------------------------------- hand-computed cases


def test_perfect_separation():
    id_s, ood_s = [0.9, 0.8, 0.7, 0.6], [0.5, 0.4]
    assert M.ood_metrics(id_s, ood_s) == {"fpr95": 0.0, "auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0}
    # and the reverse, every OOD image above every ID image. AUPR-In: the ID images come 5th and
    # 6th: AP = 1/2 · 1/5 + 1/2 · 2/6 = 4/15. AUPR-Out on −score: ID −0.4, −0.5 first, then OOD
    # −0.6 … −0.9 with precisions 1/3, 2/4, 3/5, 4/6: AP = (1/3 + 1/2 + 3/5 + 2/3) / 4 = 0.525.
    reverse = M.ood_metrics(ood_s, id_s)
    assert reverse == pytest.approx({"fpr95": 1.0, "auroc": 0.0, "aupr_in": 4 / 15, "aupr_out": 0.525})


def test_hand_computed_with_ties():
    # ID = [1, 1, 0], OOD = [1, 0, 0].
    # AUROC: pairs (id, ood) won / tied: id=1 -> vs 1 tie, vs 0, 0 wins = 2.5; twice -> 5;
    #        id=0 -> loses to 1, ties 0, 0 = 1. Total 6 of 9 pairs.
    # AUPR-In: threshold 1 accepts 2 ID + 1 OOD (P = 2/3, R = 2/3); threshold 0 accepts all
    #        (P = 1/2, R = 1). AP = 2/3 · 2/3 + 1/3 · 1/2 = 11/18.
    # AUPR-Out (OOD positive, −score): threshold 0 accepts OOD {0, 0} and ID {0} (P = 2/3, R = 2/3),
    #        then all (P = 1/2, R = 1): also 11/18.
    # FPR95: ceil(0.95 · 3) = 3 ID images must be kept -> thr = 0 -> all OOD accepted.
    id_s, ood_s = np.array([1.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])
    assert M.auroc(id_s, ood_s) == pytest.approx(6 / 9)
    assert M.aupr_in(id_s, ood_s) == pytest.approx(11 / 18)
    assert M.aupr_out(id_s, ood_s) == pytest.approx(11 / 18)
    assert M.fpr_at_tpr(id_s, ood_s) == 1.0
    # keeping 60%: 2 of 3 ID images (2/3 >= 0.6) -> thr = 1; the OOD image tied at 1 is accepted
    assert M.fpr_at_tpr(id_s, ood_s, tpr=0.6) == pytest.approx(1 / 3)


def test_hand_computed_without_ties():
    # ID = [3, 2, 1], OOD = [2.5, 0]. AUROC: 3 beats both, 2 and 1 beat only 0 -> 4/6.
    # FPR95: thr = 1 (all 3 ID kept) -> OOD 2.5 accepted, 0 rejected -> 1/2.
    # FPR@tpr=2/3: thr = 2 -> 2.5 accepted -> 1/2; tpr = 1/3: thr = 3 -> 0.
    # AUPR-In: order 3(id) 2.5(ood) 2(id) 1(id) 0(ood): AP = 1/3·1 + 1/3·2/3 + 1/3·3/4 = 29/36.
    id_s, ood_s = [3, 2, 1], [2.5, 0]
    assert M.auroc(id_s, ood_s) == pytest.approx(4 / 6)
    assert M.fpr_at_tpr(id_s, ood_s) == 0.5
    assert M.fpr_at_tpr(id_s, ood_s, tpr=2 / 3) == 0.5
    assert M.fpr_at_tpr(id_s, ood_s, tpr=1 / 3) == 0.0
    assert M.aupr_in(id_s, ood_s) == pytest.approx(29 / 36)
    # AUPR-Out on −score: −0(ood) −1(id) −2(id) −2.5(ood) −3(id): AP = 1/2·1 + 1/2·2/4 = 3/4
    assert M.aupr_out(id_s, ood_s) == pytest.approx(3 / 4)
    # OOD positive FPR@95: catch both OOD -> thr = −2.5 on −score -> ID 2 and 1 rejected -> 2/3
    assert M.fpr95_ood_positive(id_s, ood_s) == pytest.approx(2 / 3)


def test_fpr95_threshold_rule_at_the_boundary():
    # 20 ID images 1..20: 95% = 19 images -> thr = 2; an OOD image at 2 is accepted, at 1.5 not.
    id_s = np.arange(1, 21, dtype=float)
    assert M.fpr_at_tpr(id_s, [2.0, 1.5, 1.0, 0.0]) == 0.25
    # 21 ID images: ceil(19.95) = 20 must be kept -> thr = 2 still (1..21)
    assert M.fpr_at_tpr(np.arange(1, 22, dtype=float), [2.0, 1.5]) == 0.5
    # a single ID image: it is the threshold
    assert M.fpr_at_tpr([0.3], [0.3, 0.2, 0.4]) == pytest.approx(2 / 3)


def test_accuracy():
    assert M.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    assert M.accuracy(np.array([5]), np.array([5])) == 1.0
    with pytest.raises(ValueError, match="align"):
        M.accuracy([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        M.accuracy([], [])
    with pytest.raises(ValueError, match="1-D"):
        M.accuracy([[0]], [[0]])


def test_ood_metrics_keys_and_convention():
    out = M.ood_metrics([0.9, 0.2], [0.5, 0.1])
    assert list(out) == ["fpr95", "auroc", "aupr_in", "aupr_out"] == list(M.METRIC_NAMES)
    assert all(isinstance(v, float) for v in out.values())
    extra = M.ood_metrics([0.9, 0.2], [0.5, 0.1], include_ood_positive=True)
    assert list(extra) == [*out, "fpr95_ood_positive"]
    assert extra["fpr95_ood_positive"] == M.fpr95_ood_positive([0.9, 0.2], [0.5, 0.1])
    assert "ID = positive" in M.FPR_CONVENTION and "OOD" in M.FPR_OOD_POSITIVE_CONVENTION


def test_infinite_scores_rank_as_extremes():
    finite = M.ood_metrics([10.0, 1.0, 0.0], [10.0, -10.0, 0.5], include_ood_positive=True)
    infinite = M.ood_metrics([np.inf, 1.0, 0.0], [np.inf, -np.inf, 0.5], include_ood_positive=True)
    assert infinite == pytest.approx(finite)


# --------------------------------------------------------------------------- agreement with scikit-learn


def _sklearn(id_s, ood_s, tpr):
    labels = np.r_[np.ones(len(id_s)), np.zeros(len(ood_s))]
    s = np.r_[id_s, ood_s]
    fpr, tp, _ = roc_curve(labels, s, drop_intermediate=False)
    fpr_o, tp_o, _ = roc_curve(1 - labels, -s, drop_intermediate=False)
    return {
        "fpr": fpr[np.argmax(tp >= tpr)],
        "fpr_ood_positive": fpr_o[np.argmax(tp_o >= tpr)],
        "auroc": roc_auc_score(labels, s),
        "aupr_in": average_precision_score(labels, s),
        "aupr_out": average_precision_score(1 - labels, -s),
    }


@pytest.mark.parametrize("kind", ["continuous", "tied", "very_tied", "constant"])
@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_scikit_learn(kind, seed):
    rng = np.random.default_rng(seed)
    n_id, n_ood = rng.integers(1, 300, size=2)
    if kind == "continuous":
        id_s, ood_s = rng.normal(1, 1, n_id), rng.normal(0, 1, n_ood)
    elif kind == "tied":
        id_s, ood_s = rng.integers(0, 10, n_id) / 10, rng.integers(0, 8, n_ood) / 10
    elif kind == "very_tied":
        id_s, ood_s = rng.integers(0, 2, n_id).astype(float), rng.integers(0, 2, n_ood).astype(float)
    else:
        id_s, ood_s = np.full(n_id, 0.5), np.full(n_ood, 0.5)
    for tpr in [0.95, 0.5, 0.8, 1.0, 0.01]:
        ref = _sklearn(id_s, ood_s, tpr)
        assert M.fpr_at_tpr(id_s, ood_s, tpr) == ref["fpr"]
        assert M.fpr95_ood_positive(id_s, ood_s, tpr) == ref["fpr_ood_positive"]
    ref = _sklearn(id_s, ood_s, 0.95)
    assert M.auroc(id_s, ood_s) == pytest.approx(ref["auroc"], abs=1e-12)
    assert M.aupr_in(id_s, ood_s) == pytest.approx(ref["aupr_in"], abs=1e-12)
    assert M.aupr_out(id_s, ood_s) == pytest.approx(ref["aupr_out"], abs=1e-12)


def test_agrees_with_scikit_learn_on_a_large_set():
    rng = np.random.default_rng(42)
    id_s = np.round(rng.normal(0.3, 0.1, 50_000), 3).astype(np.float32)  # float32 and many ties
    ood_s = np.round(rng.normal(0.2, 0.1, 35_640), 3).astype(np.float32)
    ref = _sklearn(id_s, ood_s, 0.95)
    out = M.ood_metrics(id_s, ood_s)
    assert out["fpr95"] == ref["fpr"]
    for key in ["auroc", "aupr_in", "aupr_out"]:
        assert out[key] == pytest.approx(ref[key], abs=1e-10)


# --------------------------------------------------------------------------- properties

# Integer scores keep every transform below exact and produce many ties.
scores_list = st.lists(st.integers(-30, 30), min_size=1, max_size=40).map(lambda v: np.array(v, dtype=float))
TRANSFORMS = {
    "exp": lambda x: np.exp(x / 10),
    "affine": lambda x: 2.5 * x - 7,
    "cube": lambda x: x**3,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x / 10)),
}


@settings(max_examples=60, deadline=None)
@given(id_s=scores_list, ood_s=scores_list)
def test_invariant_under_increasing_transforms(id_s, ood_s):
    base = M.ood_metrics(id_s, ood_s, include_ood_positive=True)
    for name, f in TRANSFORMS.items():
        assert M.ood_metrics(f(id_s), f(ood_s), include_ood_positive=True) == pytest.approx(
            base, abs=1e-12
        ), name


@settings(max_examples=60, deadline=None)
@given(id_s=scores_list, ood_s=scores_list)
def test_swapping_and_negating(id_s, ood_s):
    a = M.auroc(id_s, ood_s)
    assert M.auroc(ood_s, id_s) == pytest.approx(1 - a, abs=1e-12)  # swapped roles
    assert M.auroc(-id_s, -ood_s) == pytest.approx(1 - a, abs=1e-12)  # reversed ranking
    assert M.auroc(-ood_s, -id_s) == pytest.approx(a, abs=1e-12)  # both: the same question
    # AUPR-Out and the OOD-positive FPR are AUPR-In and FPR of the swapped, negated problem
    assert M.aupr_out(id_s, ood_s) == M.aupr_in(-ood_s, -id_s)
    assert M.fpr95_ood_positive(id_s, ood_s) == M.fpr_at_tpr(-ood_s, -id_s)


@settings(max_examples=60, deadline=None)
@given(id_s=scores_list, ood_s=scores_list, tpr=st.floats(0.01, 1.0))
def test_values_are_fractions(id_s, ood_s, tpr):
    out = M.ood_metrics(id_s, ood_s, include_ood_positive=True)
    assert all(0.0 <= v <= 1.0 for v in out.values())
    assert 0.0 <= M.fpr_at_tpr(id_s, ood_s, tpr) <= 1.0
    # keeping more ID images can only accept more OOD images
    assert M.fpr_at_tpr(id_s, ood_s, tpr) <= M.fpr_at_tpr(id_s, ood_s, 1.0)


@settings(max_examples=60, deadline=None)
@given(id_s=scores_list, ood_s=scores_list)
def test_perfectly_separated_sets(id_s, ood_s):
    shifted = id_s + (ood_s.max() - id_s.min()) + 1  # every ID score above every OOD score
    out = M.ood_metrics(shifted, ood_s, include_ood_positive=True)
    assert out == {"fpr95": 0.0, "auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95_ood_positive": 0.0}


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "fn", [M.fpr_at_tpr, M.auroc, M.aupr_in, M.aupr_out, M.fpr95_ood_positive, M.ood_metrics]
)
def test_bad_inputs(fn):
    with pytest.raises(ValueError, match="id_scores is empty"):
        fn([], [0.1])
    with pytest.raises(ValueError, match="ood_scores is empty"):
        fn([0.1], np.array([]))
    with pytest.raises(ValueError, match="ood_scores contains 1 NaN"):
        fn([0.1, 0.2], [0.3, np.nan])
    with pytest.raises(ValueError, match=r"id_scores must be a 1-D array.*\(2, 2\)"):
        fn(np.zeros((2, 2)), [0.1])
    with pytest.raises(ValueError, match="1-D"):
        fn([0.1], np.float64(0.3))
    with pytest.raises(ValueError, match="numbers"):
        fn(["a", "b"], [0.1])


@pytest.mark.parametrize("tpr", [0.0, -0.1, 1.01, float("nan")])
def test_bad_tpr(tpr):
    with pytest.raises(ValueError, match="tpr"):
        M.fpr_at_tpr([0.1], [0.2], tpr)


def test_roc_curve_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(3)
    ids, ood = rng.integers(0, 8, 60).astype(float), rng.integers(0, 8, 40).astype(float)
    fpr, tpr = M.roc_curve(ids, ood)
    labels = np.r_[np.ones(ids.size), np.zeros(ood.size)]
    ref_fpr, ref_tpr, _ = roc_curve(labels, np.r_[ids, ood], drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(M.auroc(ids, ood))
