"""GL-MCM and local MCM: a float64 loop reference, the registry's batching, and scoring at extraction
time on the tiny model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from negprompt import local as L
from negprompt import scores as S
from tests.conftest import write_images


def _unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def _l_mcm_reference(s_local: np.ndarray, t: float) -> list[float]:
    out = []
    for img in s_local:
        best = 0.0
        for region in img:
            denom = sum(math.exp(v / t) for v in region)
            best = max(best, max(math.exp(v / t) / denom for v in region))
        out.append(best)
    return out


@pytest.mark.parametrize("t", [1.0, 0.1, 0.01])
def test_formulas_against_float64_loops(t):
    f, loc, pos = _unit(5, 8), _unit(5, 4, 8, seed=1), _unit(3, 8, seed=2)
    s_pos, s_local = f @ pos.T, loc @ pos.T
    ref_l = _l_mcm_reference(s_local.numpy(), t)
    ref_mcm = [
        max(math.exp(v / t) for v in row) / sum(math.exp(v / t) for v in row) for row in s_pos.tolist()
    ]
    got = S.score_all(["l_mcm", "gl_mcm"], f, pos, temperature=t, local_features=loc)
    np.testing.assert_allclose(got["l_mcm"].numpy(), ref_l, rtol=1e-12)
    np.testing.assert_allclose(got["gl_mcm"].numpy(), np.add(ref_mcm, ref_l), rtol=1e-12)
    half = S.gl_mcm_score(s_pos, None, t, s_local, weight=0.5)
    np.testing.assert_allclose(half.numpy(), np.add(ref_mcm, 0.5 * np.asarray(ref_l)), rtol=1e-12)


def test_local_mcm_sees_one_region():
    """One region matching a class dominates L-MCM although the global feature matches nothing."""
    pos = torch.eye(3, dtype=torch.float64)
    f = F.normalize(torch.ones(1, 3, dtype=torch.float64), dim=-1)  # equally far from all classes
    loc = torch.stack([F.normalize(torch.ones(3, dtype=torch.float64), dim=0), pos[1]])[None]
    got = S.score_all(["mcm", "l_mcm"], f, pos, temperature=0.01, local_features=loc)
    assert got["mcm"].item() == pytest.approx(1 / 3)
    assert got["l_mcm"].item() > 0.99


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_batching_and_memmap(batch_size, tmp_path):
    f, loc, pos = _unit(7, 8), _unit(7, 5, 8, seed=1), _unit(4, 8, seed=2)
    whole = S.score_all(["gl_mcm"], f, pos, local_features=loc)["gl_mcm"]
    path = tmp_path / "local.npy"
    np.save(path, loc.numpy().astype(np.float16))
    mapped = np.load(path, mmap_mode="r")
    batched = S.score_all(["gl_mcm"], f, pos, local_features=mapped, batch_size=batch_size)["gl_mcm"]
    torch.testing.assert_close(batched.double(), whole, atol=2e-3, rtol=0)


def test_bad_local_inputs():
    f, pos = _unit(2, 8), _unit(3, 8)
    with pytest.raises(ValueError, match="local_features"):
        S.score("gl_mcm", f, pos)
    with pytest.raises(ValueError, match=r"\[N, P, D\]"):
        S.score_all(["l_mcm"], f, pos, local_features=_unit(3, 4, 8))
    with pytest.raises(ValueError, match="L2-normalised"):
        S.score_all(["l_mcm"], f, pos, local_features=2 * _unit(2, 4, 8))
    assert "gl_mcm" not in S.score_all(None, f, pos)
    assert list(S.score_all(None, f, pos, local_features=_unit(2, 4, 8))) == [
        "mcm", "maxlogit", "energy", "gl_mcm", "l_mcm"
    ]  # fmt: skip


def test_scores_at_extraction_time(tiny_backbone, tmp_path):
    files = write_images(tmp_path / "img", 5, size=40)
    texts = {
        "a": _unit(3, tiny_backbone.embed_dim).float(),
        "b": _unit(2, tiny_backbone.embed_dim, seed=4).float(),
    }
    got = L.local_scores(tiny_backbone, files, texts, temperature=0.5, batch_size=2, progress=False)
    from PIL import Image

    images = torch.stack([tiny_backbone.preprocess(Image.open(p)) for p in files])
    glob, loc = L.encode_global_local(tiny_backbone, images)
    for name, pos in texts.items():
        ref = S.score_all(["gl_mcm", "l_mcm"], glob, pos, temperature=0.5, local_features=loc)
        for score in ("gl_mcm", "l_mcm"):
            np.testing.assert_allclose(got[name][score], ref[score].numpy(), rtol=1e-5)
        z = (loc @ pos.T) / 0.5
        best = (z.softmax(dim=2).amax(dim=2)).argmax(dim=1).numpy()
        np.testing.assert_array_equal(got[name]["best_region"], best)
        assert got[name]["best_region"].max() < loc.shape[1]
    with pytest.raises(ValueError, match="cannot read image"):
        (tmp_path / "bad.png").write_text("not an image")
        L.local_scores(tiny_backbone, [tmp_path / "bad.png"], texts, progress=False)
