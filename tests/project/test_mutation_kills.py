"""Edges of metrics, scores and losses that mutation testing found untested (see docs/testing.md).

Each test pins a behaviour a planted bug changed without any other test failing: a default value a
user relies on, a threshold helper, an error message that names the bad argument.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from negprompt import losses, metrics, scores


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    ("tpr", "expect"),
    [(0.95, 0.1), (0.5, 0.6), (0.55, 0.5), (1.0, 0.1), (0.1, 1.0), (0.05, 1.0)],
)
def test_threshold_at_tpr_is_the_id_score_at_rank_ceil_tpr_n(tpr, expect):
    id_scores = np.linspace(1.0, 0.1, 10)  # 1.0, 0.9, ..., 0.1: rank k from the top is 1.1 - k/10
    assert metrics.threshold_at_tpr(id_scores, tpr) == pytest.approx(expect)
    kept = np.mean(id_scores >= metrics.threshold_at_tpr(id_scores, tpr))
    assert kept >= tpr


def test_threshold_at_tpr_defaults_to_95_percent_and_checks_its_input():
    id_scores = np.arange(100, dtype=float)  # rank 95 from the top is the score 5
    assert metrics.threshold_at_tpr(id_scores) == 5.0
    with pytest.raises(ValueError, match=r"tpr must lie in \(0, 1\]"):
        metrics.threshold_at_tpr(id_scores, 0.0)
    with pytest.raises(ValueError, match="^id_scores is empty"):
        metrics.threshold_at_tpr([], 0.95)


def test_accuracy_errors_name_the_problem():
    with pytest.raises(ValueError, match="^pred and labels must be 1-D"):
        metrics.accuracy(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="must be 1-D"):
        metrics.accuracy(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="^pred and labels are empty; accuracy needs at least one image$"):
        metrics.accuracy([], [])


# --------------------------------------------------------------------------- scores


@pytest.mark.parametrize("name", [n for n, s in scores.SCORES.items() if not s.needs_local])
def test_score_functions_default_to_temperature_one(name):
    s_pos = torch.randn(6, 4, generator=torch.Generator().manual_seed(1)) * 0.3
    s_neg = torch.randn(6, 4, 2, generator=torch.Generator().manual_seed(2)) * 0.3
    fn = scores.SCORES[name].fn
    torch.testing.assert_close(fn(s_pos, s_neg), fn(s_pos, s_neg, 1.0))
    if name != "maxlogit":  # the only score independent of T
        assert not torch.allclose(fn(s_pos, s_neg, 1.0), fn(s_pos, s_neg, 2.0))


def test_predict_and_score_defaults_to_temperature_one():
    f, p, n = _unit(8, 16, seed=3), _unit(4, 16, seed=4), _unit(4, 2, 16, seed=5)
    _, default = scores.predict_and_score(None, f, p, n)
    _, explicit = scores.predict_and_score(None, f, p, n, temperature=1.0)
    for name in default:
        torch.testing.assert_close(default[name], explicit[name])
        torch.testing.assert_close(default[name], scores.score(name, f, p, n, temperature=1.0))


def test_read_only_arrays_are_copied_without_a_warning(tmp_path):
    f = _unit(5, 8, seed=6).numpy()
    np.save(tmp_path / "f.npy", f)
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    assert not mapped.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = scores.score("mcm", mapped, _unit(3, 8, seed=7))
    torch.testing.assert_close(got, scores.score("mcm", torch.from_numpy(f), _unit(3, 8, seed=7)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (np.array([["a", "b"]]), _unit(2, 2)),
            r"image_features must be a numeric tensor or array, got dtype <U1",
        ),
        ((_unit(2, 4), np.array([["a"] * 4])), "pos_text must be a numeric tensor or array"),
        (
            (_unit(2, 4), _unit(2, 4), np.array([[["a"] * 4]] * 2)),
            "neg_text must be a numeric tensor or array",
        ),
        ((_unit(2, 4), _unit(4)), r"pos_text must be \[C, D\], got shape \(4,\)"),
        ((_unit(2, 4), torch.zeros(0, 4)), r"pos_text has no classes \(C = 0\); give at least one"),
        ((_unit(2, 4), _unit(2, 4), torch.zeros(2, 0, 4)), r"neg_text has no negative prompts \(M = 0\)"),
        ((torch.ones(2, 4), _unit(2, 4)), "image_features are not L2-normalised .* normalise them first"),
        ((_unit(2, 4), torch.ones(2, 4)), "pos_text are not L2-normalised"),
        ((_unit(2, 4), _unit(2, 4), torch.ones(2, 1, 4)), "neg_text are not L2-normalised"),
        ((_unit(2, 4), _unit(2, 4), torch.full((2, 1, 4), float("nan"))), "neg_text contains NaN"),
        (
            (torch.zeros(2, 4, dtype=torch.complex64), _unit(2, 4)),
            "features must be real floating-point numbers, got torch.complex64",
        ),
    ],
)
def test_bad_score_inputs_name_the_argument(args, message):
    with pytest.raises(ValueError, match="^" + message):
        scores.similarities(*args)


def test_missing_negatives_error_lists_every_score_that_needs_them():
    with pytest.raises(ValueError, match="^score[(]s[)] negprompt, posi_nega need negative prompt features"):
        scores.predict_and_score(["negprompt", "mcm", "posi_nega"], _unit(2, 4), _unit(2, 4))


# --------------------------------------------------------------------------- losses


def test_oe_loss_defaults_to_logit_scale_zero_and_a_custom_image_loss_keeps_the_pd_sign():
    f, pos, neg = _unit(6, 8, seed=8), _unit(3, 8, seed=9), _unit(3, 2, 8, seed=10)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(losses.img_loss_oe(f, pos, neg), losses.img_loss_oe(f, pos, neg, labels, 0.0))
    assert not torch.allclose(losses.img_loss_oe(f, pos, neg), losses.img_loss_oe(f, pos, neg, labels, 3.0))

    def custom(image_features, pos_text, neg_text, labels, logit_scale):
        return torch.tensor(0.25)

    out = losses.stage2_loss(f, pos, neg, labels, 2.0, img_loss=custom, w_pd=0.5, w_nn=0.0)
    torch.testing.assert_close(out["pd"], losses.pd_loss(pos, neg))  # sign +1 for a callable
    torch.testing.assert_close(out["total"], 0.25 + 0.5 * losses.pd_loss(pos, neg))


@pytest.mark.parametrize("variant", ["msp", "oe"])
def test_losses_raise_no_warnings(variant):
    """An implicit softmax dimension (deprecated, and wrong for other shapes) would warn."""
    f, pos, neg = _unit(6, 8, seed=11), _unit(3, 8, seed=12), _unit(3, 2, 8, seed=13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = losses.stage2_loss(f, pos, neg, torch.tensor([0, 1, 2, 2, 1, 0]), 2.0, img_loss=variant)
    assert torch.isfinite(out["total"])
