"""Each training loss equals an independent float64 reference of its formula (explicit loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from negprompt import losses

B, C, M, D = 5, 4, 3, 8
LOGIT_SCALE = math.log(20.0)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(B, D))
    pos = rng.normal(size=(C, D))
    neg = pos[:, None, :] + 0.7 * rng.normal(size=(C, M, D))
    y = rng.integers(0, C, size=B)
    y[:2] = [0, C - 1]
    as_t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return (f, pos, neg, y), (as_t(f), as_t(pos), as_t(neg), torch.tensor(y))


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def columns(pos, neg):
    """The K = C(1+M) text columns, per class [pos, neg_1 … neg_M]."""
    out = []
    for c in range(C):
        out.append(pos[c])
        for m in range(M):
            out.append(neg[c, m])
    return out


def logsig(x):
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


def ref_stage1(f, pos, y, scale):
    total = 0.0
    for b in range(B):
        z = [scale * cos(f[b], pos[c]) for c in range(C)]
        total += -(z[y[b]] - math.log(sum(math.exp(v) for v in z)))
    return total / B


def ref_msp(f, pos, neg, y, scale):
    cols = columns(pos, neg)
    k_total = len(cols)
    total = 0.0
    for b in range(B):
        acc = 0.0
        for k, t in enumerate(cols):
            z = scale * cos(f[b], t)
            target = 1.0 if k // (1 + M) == y[b] else 0.0
            acc += -(target * logsig(z) + (1 - target) * logsig(-z))
        total += acc / k_total
    return total / B


def ref_oe(f, pos, neg, scale):
    cols = columns(pos, neg)
    total = 0.0
    for b in range(B):
        z = [scale * cos(f[b], t) for t in cols]
        lse = math.log(sum(math.exp(v) for v in z))
        total += -sum(v - lse for v in z) / len(z)
    return total / B


def ref_pd(pos, neg):
    return -sum((1 - cos(pos[c], neg[c, m])) / M for c in range(C) for m in range(M)) / C


def ref_nn(neg):
    total = 0.0
    for c in range(C):
        mean = sum(neg[c, m] / np.linalg.norm(neg[c, m]) for m in range(M)) / M
        total += 1 - np.linalg.norm(mean)
    return -total / C


def test_stage1_loss_matches_reference(data):
    (f, pos, _, y), (tf, tpos, _, ty) = data
    got = losses.stage1_loss(tf, tpos, ty, LOGIT_SCALE)
    assert float(got) == pytest.approx(ref_stage1(f, pos, y, 20.0), rel=1e-5)


def test_stage1_loss_accepts_tensor_logit_scale(data):
    (f, pos, _, y), (tf, tpos, _, ty) = data
    got = losses.stage1_loss(tf, tpos, ty, torch.tensor(LOGIT_SCALE))
    assert float(got) == pytest.approx(ref_stage1(f, pos, y, 20.0), rel=1e-5)


def test_img_loss_msp_matches_reference(data):
    (f, pos, neg, y), (tf, tpos, tneg, ty) = data
    got = losses.img_loss_msp(tf, tpos, tneg, ty, LOGIT_SCALE)
    assert float(got) == pytest.approx(ref_msp(f, pos, neg, y, 20.0), rel=1e-5)


def test_img_loss_oe_matches_reference(data):
    (f, pos, neg, _), (tf, tpos, tneg, ty) = data
    got = losses.img_loss_oe(tf, tpos, tneg, ty, LOGIT_SCALE)
    assert float(got) == pytest.approx(ref_oe(f, pos, neg, 20.0), rel=1e-5)


def test_pd_and_nn_match_reference(data):
    (_, pos, neg, _), (_, tpos, tneg, _) = data
    assert float(losses.pd_loss(tpos, tneg)) == pytest.approx(ref_pd(pos, neg), rel=1e-5)
    assert float(losses.nn_loss(tneg)) == pytest.approx(ref_nn(neg), rel=1e-5)


def test_extended_logits_layout(data):
    (f, pos, neg, _), (tf, tpos, tneg, _) = data
    z = losses.extended_logits(tf, tpos, tneg, LOGIT_SCALE)
    assert z.shape == (B, C * (1 + M))
    cols = columns(pos, neg)
    for b in range(B):
        for k in range(len(cols)):
            assert float(z[b, k]) == pytest.approx(20.0 * cos(f[b], cols[k]), abs=1e-4)


@pytest.mark.parametrize("variant", ["msp", "oe"])
def test_stage2_loss_combines_terms(data, variant):
    (f, pos, neg, y), (tf, tpos, tneg, ty) = data
    out = losses.stage2_loss(tf, tpos, tneg, ty, LOGIT_SCALE, img_loss=variant, w_img=0.7, w_pd=0.3, w_nn=0.2)
    img = ref_msp(f, pos, neg, y, 20.0) if variant == "msp" else ref_oe(f, pos, neg, 20.0)
    pd = ref_pd(pos, neg) * (1.0 if variant == "msp" else -1.0)
    nn = ref_nn(neg)
    assert float(out["img"]) == pytest.approx(img, rel=1e-5)
    assert float(out["pd"]) == pytest.approx(pd, rel=1e-5)
    assert float(out["nn"]) == pytest.approx(nn, rel=1e-5)
    assert float(out["total"]) == pytest.approx(0.7 * img + 0.3 * pd + 0.2 * nn, rel=1e-5)


def test_stage2_default_weights(data):
    (f, pos, neg, y), (tf, tpos, tneg, ty) = data
    out = losses.stage2_loss(tf, tpos, tneg, ty, LOGIT_SCALE)
    # the defaults: the MSP image loss, w_img = 1, w_pd = 0.1, w_nn = 0.05; terms from the references
    expect = ref_msp(f, pos, neg, y, 20.0) + 0.1 * ref_pd(pos, neg) + 0.05 * ref_nn(neg)
    assert float(out["total"]) == pytest.approx(expect, rel=1e-5)


def test_stage2_unknown_variant_names_choices(data):
    _, (tf, tpos, tneg, ty) = data
    with pytest.raises(ValueError, match="msp"):
        losses.stage2_loss(tf, tpos, tneg, ty, LOGIT_SCALE, img_loss="fence")


def test_registry_and_signs():
    assert set(losses.IMG_LOSSES) == {"msp", "oe"}
    assert losses.PD_SIGN == {"msp": 1.0, "oe": -1.0}


def test_minimising_pd_and_nn_spreads_negatives():
    """Gradient steps on L_pd push negatives from their positive; on L_nn apart from each other."""
    torch.manual_seed(0)
    pos = torch.randn(C, D)
    neg = (pos[:, None] + 0.2 * torch.randn(C, M, D)).requires_grad_(True)
    before_pd, before_nn = float(losses.pd_loss(pos, neg.detach())), float(losses.nn_loss(neg.detach()))
    opt = torch.optim.SGD([neg], lr=5.0)
    for _ in range(30):
        opt.zero_grad()
        (losses.pd_loss(pos, neg) + losses.nn_loss(neg)).backward()
        opt.step()
    assert float(losses.pd_loss(pos, neg.detach())) < before_pd - 0.05
    assert float(losses.nn_loss(neg.detach())) < before_nn - 0.05
