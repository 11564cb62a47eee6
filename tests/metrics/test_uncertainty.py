"""Bootstrap intervals: the vectorised resamples equal a plain loop over `negprompt.metrics`, nominal
95% intervals cover a known truth, and paired differences are differences on the same images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from negprompt import metrics as M
from negprompt import uncertainty as U


def _data(seed: int = 1, ties: bool = True):
    rng = np.random.default_rng(seed)
    r = (lambda x: np.round(x, 1)) if ties else (lambda x: x)
    id_scores = r(rng.normal(1.0, 1.0, 120))
    oods = {"near": r(rng.normal(0.3, 1.0, 80)), "far": r(rng.normal(-1.0, 1.0, 37))}
    correct = rng.random(120) < 0.8
    return id_scores, oods, correct


@pytest.mark.parametrize("ties", [True, False])
def test_resampled_metrics_equal_a_loop_over_plain_metrics(ties):
    id_scores, oods, correct = _data(ties=ties)
    bs = U.Bootstrap(n_resamples=150, seed=7)
    fast = U.resampled_metrics(id_scores, oods, correct=correct, bootstrap=bs)
    idx_id = list(U.resample_indices(id_scores.size, bs, 0))
    idx = {name: list(U.resample_indices(s.size, bs, k + 1)) for k, (name, s) in enumerate(oods.items())}
    for b in range(bs.n_resamples):
        per_set = {}
        for name, s in oods.items():
            ref = M.ood_metrics(id_scores[idx_id[b]], s[idx[name][b]])
            per_set[name] = ref
            for metric, value in ref.items():
                assert fast[name][metric][b] == pytest.approx(value, abs=1e-12)
        for metric in M.METRIC_NAMES:
            mean = np.mean([per_set[n][metric] for n in oods])
            assert fast["mean"][metric][b] == pytest.approx(mean, abs=1e-12)
        assert fast["near"]["id_acc"][b] == pytest.approx(correct[idx_id[b]].mean(), abs=1e-12)


def test_intervals_are_the_loop_percentiles_around_the_full_sample_value():
    id_scores, oods, correct = _data()
    bs = U.Bootstrap(n_resamples=200, seed=3, level=0.9)
    got = U.intervals(id_scores, oods, correct=correct, bootstrap=bs)
    idx_id = list(U.resample_indices(id_scores.size, bs, 0))
    idx_near = list(U.resample_indices(oods["near"].size, bs, 1))
    loop = [M.fpr_at_tpr(id_scores[i], oods["near"][j]) for i, j in zip(idx_id, idx_near)]
    low, high = np.percentile(loop, [5, 95])
    assert got["near"]["fpr95"] == U.Interval(M.fpr_at_tpr(id_scores, oods["near"]), low, high)
    assert got["far"]["auroc"].value == M.auroc(id_scores, oods["far"])
    assert got["mean"]["id_acc"].value == pytest.approx(correct.mean())


def test_same_seed_same_intervals_other_seed_other_intervals():
    id_scores, oods, _ = _data()
    a = U.intervals(id_scores, oods, bootstrap=U.Bootstrap(n_resamples=100, seed=0))
    b = U.intervals(id_scores, oods, bootstrap=U.Bootstrap(n_resamples=100, seed=0))
    c = U.intervals(id_scores, oods, bootstrap=U.Bootstrap(n_resamples=100, seed=1))
    assert a == b
    assert a != c


def test_a_set_keeps_its_resamples_whatever_the_other_sets():
    """ID and each OOD set are drawn from their own streams: adding a set changes no other set."""
    id_scores, oods, _ = _data()
    bs = U.Bootstrap(n_resamples=60, seed=5)
    one = U.resampled_metrics(id_scores, {"near": oods["near"]}, bootstrap=bs)
    two = U.resampled_metrics(id_scores, oods, bootstrap=bs)
    np.testing.assert_array_equal(one["near"]["fpr95"], two["near"]["fpr95"])


def test_chunked_resamples_give_the_same_values(monkeypatch):
    id_scores, oods, correct = _data()
    bs = U.Bootstrap(n_resamples=50, seed=2)
    whole = U.resampled_metrics(id_scores, oods, correct=correct, bootstrap=bs)
    monkeypatch.setattr(U, "_CHUNK_ELEMENTS", 300)  # a few resamples at a time
    parts = U.resampled_metrics(id_scores, oods, correct=correct, bootstrap=bs)
    for name in whole:
        for metric in whole[name]:
            np.testing.assert_allclose(parts[name][metric], whole[name][metric], rtol=0, atol=1e-12)


def test_nominal_95_percent_intervals_cover_the_true_value_at_least_90_percent_of_the_time():
    """ID ~ N(1, 1), OOD ~ N(0, 1): AUROC = Φ(1/√2); FPR95 = 1 − Φ(1 − 1.6449) (the 5% ID quantile)."""
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    truth = {"auroc": phi(1 / math.sqrt(2)), "fpr95": 1 - phi(1 - 1.6448536)}
    rng = np.random.default_rng(2024)
    trials, hits = 120, {"auroc": 0, "fpr95": 0}
    bs = U.Bootstrap(n_resamples=1000, seed=11)
    for _ in range(trials):
        got = U.intervals(rng.normal(1, 1, 300), {"o": rng.normal(0, 1, 200)}, bootstrap=bs)
        for metric in hits:
            hits[metric] += got["o"][metric].low <= truth[metric] <= got["o"][metric].high
    for metric, n in hits.items():
        assert n / trials >= 0.9, f"{metric}: {n}/{trials} intervals cover the truth"


def test_paired_difference_is_b_minus_a_on_the_same_resamples():
    id_a, oods_a, correct_a = _data(seed=1)
    rng = np.random.default_rng(9)
    id_b = id_a + rng.normal(0, 0.3, id_a.size)
    oods_b = {k: v + rng.normal(0, 0.3, v.size) for k, v in oods_a.items()}
    correct_b = rng.random(id_a.size) < 0.7
    bs = U.Bootstrap(n_resamples=120, seed=4)
    got = U.paired_difference((id_a, oods_a), (id_b, oods_b), correct=(correct_a, correct_b), bootstrap=bs)
    counts = U.draw_resamples([id_a.size, *(s.size for s in oods_a.values())], bs)
    da = U.resampled_metrics(id_a, oods_a, correct=correct_a, resamples=counts)
    db = U.resampled_metrics(id_b, oods_b, correct=correct_b, resamples=counts)
    for name in ("near", "far", "mean"):
        for metric in ("fpr95", "auroc", "id_acc"):
            diff = db[name][metric] - da[name][metric]
            low, high = np.percentile(diff, [2.5, 97.5])
            assert got[name][metric].low == pytest.approx(low)
            assert got[name][metric].high == pytest.approx(high)
    assert got["near"]["auroc"].value == pytest.approx(
        M.auroc(id_b, oods_b["near"]) - M.auroc(id_a, oods_a["near"])
    )


def test_a_row_against_itself_differs_by_exactly_zero():
    id_scores, oods, _ = _data()
    got = U.paired_difference((id_scores, oods), (id_scores, oods), bootstrap=U.Bootstrap(n_resamples=50))
    for per in got.values():
        for iv in per.values():
            assert (iv.value, iv.low, iv.high) == (0.0, 0.0, 0.0)
            assert not iv.excludes(0.0)


def test_a_clearly_better_row_has_a_difference_interval_that_excludes_zero():
    rng = np.random.default_rng(0)
    id_scores = rng.normal(0, 1, 400)
    ood = rng.normal(0, 1, 300)
    better = (id_scores + 2.0, {"o": ood})
    got = U.paired_difference((id_scores, {"o": ood}), better, bootstrap=U.Bootstrap(n_resamples=300))
    assert got["o"]["auroc"].low > 0 and got["o"]["fpr95"].high < 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: U.resampled_metrics([], {"o": [1.0]}), "non-empty"),
        (lambda: U.resampled_metrics([1.0, np.nan], {"o": [1.0]}), "NaN"),
        (lambda: U.resampled_metrics([1.0], {"mean": [1.0]}), "may not be called 'mean'"),
        (lambda: U.resampled_metrics([1.0, 2.0], {"o": [1.0]}, correct=[True]), "one per ID image"),
        (lambda: U.paired_difference(([1.0, 2.0], {"o": [0.0]}), ([1.0], {"o": [0.0]})), "same images"),
        (lambda: U.Bootstrap(n_resamples=1), "n_resamples"),
        (lambda: U.Bootstrap(level=1.0), "level"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_id_scores_per_ood_set():
    """A method that scores the ID images once per OOD set (AdaNeg's per-set streams): each set is
    measured against its own ID scores, on the same ID resamples; one shared array is the same thing."""
    from negprompt.uncertainty import (
        Bootstrap,
        draw_resamples,
        paired_difference,
        point_metrics,
        resampled_metrics,
    )

    rng = np.random.default_rng(3)
    ids = {"a": rng.normal(1, 1, 40), "b": rng.normal(0.5, 1, 40)}
    oods = {"a": rng.normal(0, 1, 30), "b": rng.normal(0, 1, 25)}
    boot = Bootstrap(n_resamples=200, seed=1)
    resamples = draw_resamples([40, 30, 25], boot)
    per_set = resampled_metrics(ids, oods, resamples=resamples)
    for k, name in enumerate(("a", "b")):
        alone = resampled_metrics(ids[name], {name: oods[name]}, resamples=[resamples[0], resamples[1 + k]])
        np.testing.assert_allclose(per_set[name]["fpr95"], alone[name]["fpr95"])
        assert point_metrics(ids, oods)[name] == pytest.approx(
            point_metrics(ids[name], {name: oods[name]})[name]
        )
    shared = resampled_metrics(ids["a"], oods, resamples=resamples)
    same = resampled_metrics({"a": ids["a"], "b": ids["a"]}, oods, resamples=resamples)
    np.testing.assert_allclose(shared["mean"]["auroc"], same["mean"]["auroc"])
    diff = paired_difference((ids, oods), (ids, oods), bootstrap=boot)
    assert all(abs(i.value) < 1e-12 and i.low == i.high == 0 for per in diff.values() for i in per.values())
    with pytest.raises(ValueError, match=r"gives ID scores per OOD set but none for \['b'\]"):
        resampled_metrics({"a": ids["a"]}, oods)
    with pytest.raises(ValueError, match="differ in length"):
        resampled_metrics({"a": ids["a"], "b": ids["b"][:10]}, oods)
