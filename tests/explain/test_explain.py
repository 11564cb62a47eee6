"""Every explanation reproduces its score: to 1e-6 against `negprompt.scores.score` / `neglabel_score`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negprompt import explain as E
from negprompt.neglabel import neglabel_score
from negprompt.scores import SCORES, score, score_all

C, M, D, P = 7, 3, 16, 9


def unit(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


@pytest.fixture(scope="module")
def feats():
    f, pos, neg = unit((12, D), 0), unit((C, D), 1), unit((C, M, D), 2)
    # a few images close to a class prompt, a few close to a negative: both regimes occur
    f[:3] = torch.nn.functional.normalize(f[:3] + 3 * pos[:3], dim=-1)
    f[3:6] = torch.nn.functional.normalize(f[3:6] + 3 * neg[:3, 0], dim=-1)
    local = unit((12, P, D), 3)
    return f, pos, neg, local


def sims(f, pos, neg, local, i):
    return (f[i] @ pos.T).numpy(), (neg @ f[i]).numpy(), (local[i] @ pos.T).numpy()


@pytest.mark.parametrize("name", list(SCORES))
@pytest.mark.parametrize("temperature", [1.0, 0.05, 0.01])
def test_every_registered_score_is_reproduced(feats, name, temperature):
    f, pos, neg, local = feats
    ref = score_all([name], f, pos, neg, temperature, local_features=local)[name].numpy()
    for i in range(len(f)):
        s_pos, s_neg, s_local = sims(f, pos, neg, local, i)
        exp = E.explain(name, s_pos, s_neg, temperature, s_local=s_local)
        assert exp.score == pytest.approx(ref[i], abs=1e-6, rel=1e-6), (name, i)
        assert exp.pred == int(np.argmax(s_pos))


def test_negprompt_masses_split_the_softmax(feats):
    f, pos, neg, _ = feats
    names = [f"c{i}" for i in range(C)]
    for i in range(len(f)):
        s_pos, s_neg, _ = sims(f, pos, neg, feats[3], i)
        exp = E.explain_negprompt(s_pos, s_neg, 0.01, names)
        t = exp.terms
        assert t["positive mass P⁺"] + t["negative mass 1 − P⁺"] == pytest.approx(1.0, abs=1e-12)
        assert exp.rows["share"].sum() == pytest.approx(1.0, abs=1e-12)
        assert len(exp.rows) == C * (1 + M)
        pos_rows = exp.rows[exp.rows["kind"] == "positive"]
        assert pos_rows["share"].sum() == pytest.approx(t["positive mass P⁺"], abs=1e-12)
        # the top-1 share is the MCM probability of the predicted class
        assert t["top-1 share q₁"] == pytest.approx(
            float(score("mcm", f[i : i + 1], pos, None, 0.01)), abs=1e-9
        )
        assert t["gap q₁ − q₂"] >= 0
    # an image built near a negative prompt puts most mass on the negatives at a low temperature
    s_pos, s_neg, _ = sims(f, pos, neg, feats[3], 3)
    assert E.explain_negprompt(s_pos, s_neg, 0.01).terms["negative mass 1 − P⁺"] > 0.5


def test_energy_is_top_cosine_plus_tie_bonus():
    s = np.array([0.3, 0.3, 0.3])
    exp = E.explain_energy(s, 1.0)
    assert exp.terms["near-tie bonus T·log(1/q₁)"] == pytest.approx(np.log(3))
    exp = E.explain_energy(np.array([0.9, -0.9]), 0.001)
    assert exp.terms["near-tie bonus T·log(1/q₁)"] == pytest.approx(0.0, abs=1e-9)


def test_local_scores_name_the_deciding_region(feats):
    f, pos, neg, local = feats
    for i in range(4):
        s_pos, _, s_local = sims(f, pos, neg, local, i)
        exp = E.explain_l_mcm(s_local, 0.01, s_pos=s_pos)
        z = s_local / 0.01
        q = np.exp(z - z.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        assert exp.region == int(np.argmax(q.max(1)))
        gl = E.explain_gl_mcm(s_pos, s_local, 0.01)
        assert gl.region == exp.region
        assert gl.terms["global MCM q₁"] + gl.terms["local MCM q₁(p*)"] == pytest.approx(gl.score)
        # a run directory keeps l_mcm and best_region only: the same sum from those
        stored = E.explain_gl_mcm(s_pos, None, 0.01, local_score=exp.score, region=exp.region)
        assert stored.score == pytest.approx(gl.score, abs=1e-12) and stored.region == exp.region


@pytest.mark.parametrize("groups", [1, 2, 5])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_neglabel_is_reproduced(feats, groups, temperature):
    f, pos, _, _ = feats
    labels = unit((10, D), 7)
    words = [f"word{j}" for j in range(10)]
    ref = neglabel_score(f @ pos.T, f @ labels.T, groups, 0.01 * temperature).numpy()
    for i in range(len(f)):
        s_pos, s_lab = (f[i] @ pos.T).numpy(), (f[i] @ labels.T).numpy()
        exp = E.explain(
            "neglabel", s_pos, None, temperature, s_labels=s_lab, label_words=words, groups=groups
        )
        assert exp.score == pytest.approx(ref[i], abs=1e-6, rel=1e-6)
        assert exp.terms["positive mass (mean over groups)"] + exp.terms[
            "negative mass (mean over groups)"
        ] == (pytest.approx(1.0))
        # top negative labels, by cosine, with their words
        best = int(np.argmax(s_lab))
        assert exp.rows["prompt"].iloc[0] == words[best]
        assert exp.rows["similarity"].is_monotonic_decreasing


def test_threshold_position_and_caption():
    ids = np.arange(100, dtype=float)
    pos = E.threshold_position(50.0, 5.0, ids)
    assert (
        pos.accepted and pos.margin == 45.0 and pos.id_percentile == 50.0 and pos.threshold_percentile == 5.0
    )
    assert not E.threshold_position(4.0, 5.0, ids).accepted
    exp = E.explain_negprompt(np.array([0.9, 0.1]), np.array([[0.2], [0.1]]), 0.1, ["coat", "bag"])
    text = E.caption(exp, E.threshold_position(exp.score, 0.9999, [0.5, 0.99995, 1.0]), ["coat", "bag"])
    assert "coat" in text and "rejected as OOD" in text and f"{exp.score:.4g}" in text
    assert f"{100 * exp.terms['positive mass P⁺']:.1f}%" in text
    # each score writes its own sentence: max-logit speaks of cosines, not of the softmax mass
    ml = E.caption(E.explain_maxlogit(np.array([0.9, 0.1])), None, ["coat", "bag"])
    assert "cosine 0.9000" in ml and "mass" not in ml


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="no explanation for score 'nope'"):
        E.explain("nope", np.ones(3))
    with pytest.raises(ValueError, match="needs the negative prompts"):
        E.explain("negprompt", np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        E.explain("mcm", np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="temperature"):
        E.explain("mcm", np.ones(3), temperature=0)
    with pytest.raises(ValueError, match="2 class names for 3"):
        E.explain("mcm", np.ones(3), class_names=["a", "b"])
