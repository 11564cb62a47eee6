"""Tests of negprompt.scores: hand-computed values, a float64 numpy reference, batching, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from negprompt import scores as S

ALL = ["negprompt", "mcm", "maxlogit", "energy", "posi_nega"]
LOCAL = ["gl_mcm", "l_mcm"]  # need local features (tests/methods/test_local_scores.py)


# --------------------------------------------------------------------------- tiny hand-computed cases

# Two images in D = 2; C = 2 classes with M = 1 negative each.
#   image 0 = [1, 0]:     s_pos = [1, 0],     s_neg = [[0], [-1]],    predicted class 0
#   image 1 = [0.6, 0.8]: s_pos = [0.6, 0.8], s_neg = [[0.8], [-0.6]], predicted class 1
F_TINY = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
POS_TINY = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
NEG_TINY = torch.tensor([[[0.0, 1.0]], [[-1.0, 0.0]]])

E = math.e
D0 = E + 1 + 1 + 1 / E  # extended denominator of image 0 at T = 1
D1 = math.exp(0.6) + math.exp(0.8) + math.exp(0.8) + math.exp(-0.6)  # of image 1
D0_HALF = E**2 + 1 + 1 + E**-2  # image 0 at T = 0.5: z_pos = [2, 0], z_neg = [[0], [-2]]

HAND = {
    # name: (expected at T = 1 for images 0 and 1, expected for image 0 at T = 0.5)
    "negprompt": ([E / D0, math.exp(0.8) / D1], E**2 / D0_HALF),  # 0.534447, 0.326229 | 0.775803
    "mcm": ([E / (E + 1), math.exp(0.8) / (math.exp(0.6) + math.exp(0.8))], E**2 / (E**2 + 1)),  # 0.731059
    "maxlogit": ([1.0, 0.8], 1.0),
    "energy": ([math.log(E + 1), math.log(math.exp(0.6) + math.exp(0.8))], 0.5 * math.log(E**2 + 1)),
    # p_ĉ − max_m p̃_{ĉ,m} of the *predicted* class: image 1 uses class 1's negative (−0.6), not the
    # larger negative of class 0 (0.8), which would give exactly 0.
    "posi_nega": ([(E - 1) / D0, (math.exp(0.8) - math.exp(-0.6)) / D1], (E**2 - 1) / D0_HALF),
}
LITERALS = {  # the same numbers written out, so a wrong formula above cannot hide a wrong implementation
    "negprompt": [0.534446645, 0.326229393],
    "mcm": [0.731058579, 0.549833997],
    "maxlogit": [1.0, 0.8],
    "energy": [1.313261688, 1.398138869],
    "posi_nega": [0.337834712, 0.245782215],
}


@pytest.mark.parametrize("name", ALL)
def test_hand_computed_values(name):
    at_one, at_half = HAND[name]
    got = S.score(name, F_TINY, POS_TINY, NEG_TINY)
    np.testing.assert_allclose(got.numpy(), at_one, rtol=1e-6)
    np.testing.assert_allclose(got.numpy(), LITERALS[name], rtol=1e-6)
    half = S.score(name, F_TINY[:1], POS_TINY, NEG_TINY, temperature=0.5)
    np.testing.assert_allclose(half.numpy(), [at_half], rtol=1e-6)


def test_similarities_and_predict_on_tiny_inputs():
    s_pos, s_neg = S.similarities(F_TINY, POS_TINY, NEG_TINY)
    np.testing.assert_allclose(s_pos.numpy(), [[1, 0], [0.6, 0.8]], atol=1e-7)
    np.testing.assert_allclose(s_neg.numpy(), [[[0], [-1]], [[0.8], [-0.6]]], atol=1e-7)
    assert S.similarities(F_TINY, POS_TINY)[1] is None
    pred = S.predict(F_TINY, POS_TINY)
    assert pred.dtype == torch.long and pred.tolist() == [0, 1]


# --------------------------------------------------------------------------- float64 numpy reference


def _reference(name: str, f: np.ndarray, pos: np.ndarray, neg: np.ndarray, t: float) -> np.ndarray:
    """The formulas of METHOD.md written naively in float64 (no log-sum-exp tricks)."""
    s_pos, s_neg = f @ pos.T, np.einsum("nd,cmd->ncm", f, neg)
    e_pos, e_neg = np.exp(s_pos / t), np.exp(s_neg / t)
    extended = e_pos.sum(1) + e_neg.sum((1, 2))
    c_hat = s_pos.argmax(1)
    rows = np.arange(len(f))
    return {
        "negprompt": e_pos.max(1) / extended,
        "mcm": e_pos.max(1) / e_pos.sum(1),
        "maxlogit": s_pos.max(1),
        "energy": t * np.log(e_pos.sum(1)),
        "posi_nega": (e_pos[rows, c_hat] - e_neg[rows, c_hat].max(1)) / extended,
    }[name]


def _random_inputs(seed: int, n=37, c=7, m=3, d=16, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    f = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)
    pos = F.normalize(torch.randn(c, d, generator=g, dtype=torch.float64), dim=-1)
    neg = F.normalize(torch.randn(c, m, d, generator=g, dtype=torch.float64), dim=-1)
    return f.to(dtype), pos.to(dtype), neg.to(dtype)


@pytest.mark.parametrize("temperature", [0.01, 0.1, 1.0, 10.0])
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_float64_reference(name, temperature, seed):
    f, pos, neg = _random_inputs(seed)
    expected = _reference(name, f.double().numpy(), pos.double().numpy(), neg.double().numpy(), temperature)
    got = S.score(name, f, pos, neg, temperature=temperature)
    assert got.dtype == torch.float32 and got.shape == (37,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=2e-4, atol=1e-6)
    got64 = S.score(name, f.double(), pos.double(), neg.double(), temperature=temperature)
    assert got64.dtype == torch.float64
    np.testing.assert_allclose(got64.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_dtype_promotion_and_numpy_inputs():
    f, pos, neg = _random_inputs(3)
    assert S.score("negprompt", f.half(), pos.half(), neg.half()).dtype == torch.float32
    assert S.score("mcm", f.bfloat16(), pos).dtype == torch.float32
    from_numpy = S.score("negprompt", f.numpy(), pos.numpy(), neg.numpy())
    torch.testing.assert_close(from_numpy, S.score("negprompt", f, pos, neg))


def test_small_temperature_is_stable_where_the_naive_formula_overflows():
    f, pos, neg = _random_inputs(4)
    t = 1e-3  # e^{s/T} reaches e^{1000}: inf in float32 and float64
    with np.errstate(over="ignore", invalid="ignore"):
        naive = _reference("mcm", f.numpy().astype(np.float32), pos.numpy(), neg.numpy(), t)
    assert not np.isfinite(naive).all()
    out = S.score_all(ALL, f, pos, neg, temperature=t)
    for name, value in out.items():
        assert torch.isfinite(value).all(), name
    assert ((out["mcm"] > 0) & (out["mcm"] <= 1)).all()
    # as T -> 0, T·logsumexp(s/T) -> max_c s_c
    torch.testing.assert_close(out["energy"], out["maxlogit"], atol=5e-3, rtol=0)


def test_score_relations():
    f, pos, neg = _random_inputs(5, n=200)
    out = S.score_all(None, f, pos, neg)
    # more columns in the denominator: negprompt <= mcm, and a margin cannot exceed its probability
    assert (out["negprompt"] <= out["mcm"] + 1e-7).all()
    assert (out["posi_nega"] < out["negprompt"]).all()
    assert (out["posi_nega"] > -1).all()
    assert (out["mcm"] >= 1 / pos.shape[0] - 1e-7).all()
    # scores without negatives ignore neg_text
    for name in ["mcm", "maxlogit", "energy"]:
        torch.testing.assert_close(out[name], S.score(name, f, pos))
    # one negative identical to its positive prompt: posi_nega is exactly 0 when it is the best one
    same = pos[:, None, :].expand(-1, 2, -1).clone()
    same[:, 1] = -pos
    torch.testing.assert_close(S.score("posi_nega", f, pos, same), torch.zeros(200), atol=1e-7, rtol=0)


# --------------------------------------------------------------------------- registry and score_all


def test_registry():
    assert S.available_scores() == ALL + LOCAL
    assert set(S.SCORES) == set(ALL + LOCAL)
    assert [n for n in S.SCORES if S.needs_local(n)] == LOCAL
    assert [n for n in ALL if S.needs_negatives(n)] == ["negprompt", "posi_nega"]
    for name, spec in S.SCORES.items():
        assert spec.name == name and spec.fn.__doc__ and "(x)" in spec.fn.__doc__


@pytest.mark.parametrize("batch_size", [1, 5, 36, 37, 1000])
def test_score_all_is_batch_invariant(batch_size):
    f, pos, neg = _random_inputs(6, dtype=torch.float64)
    whole = {name: S.score(name, f, pos, neg, temperature=0.3) for name in ALL}
    batched = S.score_all(ALL, f, pos, neg, temperature=0.3, batch_size=batch_size)
    assert list(batched) == ALL
    for name in ALL:
        assert batched[name].shape == (37,)
        torch.testing.assert_close(batched[name], whole[name], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("batch_size", [1, 5, 37])
def test_predictions_come_from_the_same_pass_as_the_scores(batch_size):
    f, pos, neg = _random_inputs(10, dtype=torch.float64)
    pred, scores = S.predict_and_score(ALL, f, pos, neg, temperature=0.3, batch_size=batch_size)
    reference = (f @ pos.T).argmax(dim=1)  # plain float64 argmax over all images at once
    assert torch.equal(pred, reference) and torch.equal(S.predict(f, pos, batch_size=batch_size), reference)
    for name, values in S.score_all(ALL, f, pos, neg, temperature=0.3).items():
        torch.testing.assert_close(scores[name], values, rtol=1e-12, atol=1e-14)
    empty_pred, empty = S.predict_and_score(ALL, f[:0], pos, neg)
    assert empty_pred.shape == (0,) and all(v.shape == (0,) for v in empty.values())


def test_score_all_reads_a_memory_mapped_array(tmp_path):
    f, pos, neg = _random_inputs(7)
    np.save(tmp_path / "f.npy", f.numpy().astype(np.float16))
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    out = S.score_all(["negprompt"], mapped, pos, neg, batch_size=10)["negprompt"]
    torch.testing.assert_close(
        out, S.score("negprompt", torch.from_numpy(np.asarray(mapped).copy()), pos, neg)
    )


def test_score_all_defaults_and_empty_batch():
    f, pos, neg = _random_inputs(8)
    assert list(S.score_all(None, f, pos)) == ["mcm", "maxlogit", "energy"]
    assert list(S.score_all(None, f, pos, neg)) == ALL
    assert list(S.score_all("energy", f, pos)) == ["energy"]
    empty = S.score_all(ALL, f[:0], pos, neg)
    assert all(v.shape == (0,) for v in empty.values())


# --------------------------------------------------------------------------- bad inputs


def test_unknown_score_lists_the_available_ones():
    f, pos, _ = _random_inputs(9)
    with pytest.raises(ValueError, match="unknown score 'msp'.*negprompt, mcm, maxlogit, energy, posi_nega"):
        S.score("msp", f, pos)
    with pytest.raises(ValueError, match="unknown score"):
        S.needs_negatives("msp")


def test_width_mismatch_names_both_widths():
    f, pos, neg = _random_inputs(10)
    with pytest.raises(ValueError, match="width 16.*width 8"):
        S.score("mcm", f, F.normalize(torch.randn(7, 8), dim=-1))
    with pytest.raises(ValueError, match="width 16.*width 8"):
        S.score("negprompt", f, pos, F.normalize(torch.randn(7, 3, 8), dim=-1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("where", ["image", "pos", "neg"])
def test_non_finite_features_are_rejected(bad, where):
    f, pos, neg = _random_inputs(11)
    {"image": f, "pos": pos, "neg": neg}[where].view(-1)[3] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        S.score("negprompt", f, pos, neg)


def test_negatives_required():
    f, pos, _ = _random_inputs(12)
    for name in ["negprompt", "posi_nega"]:
        with pytest.raises(ValueError, match=f"{name}.*need negative prompt features"):
            S.score(name, f, pos)
    with pytest.raises(ValueError, match="M = 0"):
        S.score("negprompt", f, pos, torch.zeros(7, 0, 16))


def test_shape_errors():
    f, pos, neg = _random_inputs(13)
    with pytest.raises(ValueError, match="C = 0"):
        S.score("mcm", f, pos[:0])
    with pytest.raises(ValueError, match="C = 0"):
        S.score("negprompt", f, pos[:0], neg[:0])
    with pytest.raises(ValueError, match=r"image_features must be \[N, D\]"):
        S.score("mcm", f[0], pos)
    with pytest.raises(ValueError, match=r"neg_text must be \[C, M, D\]"):
        S.score("negprompt", f, pos, neg[:, 0])
    with pytest.raises(ValueError, match="neg_text has 6 classes but pos_text has 7"):
        S.score("negprompt", f, pos, neg[:6])


def test_unnormalised_features_and_bad_temperature_are_rejected():
    f, pos, neg = _random_inputs(14)
    with pytest.raises(ValueError, match="not L2-normalised.*normalize"):
        S.score("mcm", 3 * f, pos)
    with pytest.raises(ValueError, match="pos_text are not L2-normalised"):
        S.score("mcm", f, 0.5 * pos)
    for t in [0.0, -1.0, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="temperature"):
            S.score("mcm", f, pos, temperature=t)
    with pytest.raises(ValueError, match="batch_size"):
        S.score_all(["mcm"], f, pos, batch_size=0)


def test_text_checked_once_but_every_image_batch_checked_and_dtypes_promoted():
    gen = torch.Generator().manual_seed(5)
    f = F.normalize(torch.randn(10, 8, generator=gen), dim=-1)
    pos = F.normalize(torch.randn(3, 8, generator=gen, dtype=torch.float64), dim=-1)
    neg = F.normalize(torch.randn(3, 2, 8, generator=gen), dim=-1)
    out = S.score_all(["negprompt", "posi_nega"], f, pos, neg, batch_size=4)
    ref = S.score_all(["negprompt", "posi_nega"], f.double(), pos, neg.double(), batch_size=100)
    for name in out:
        assert out[name].dtype == torch.float64
        torch.testing.assert_close(out[name], ref[name], atol=1e-12, rtol=0)
    f[9, 0] = float("nan")  # in the last batch only
    with pytest.raises(ValueError, match="image_features contains NaN"):
        S.score_all(["negprompt"], f, pos, neg, batch_size=4)
