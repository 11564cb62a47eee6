"""LoCoOp: the OOD regularisation against a float64 loop, the cached local features, and training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from negprompt import locoop as LC
from negprompt.local import encode_global_local
from negprompt.train import TrainConfig, train_prompts
from negprompt.train.sources import FeatureSource
from tests.conftest import write_images


def _reference(local, pos, labels, scale, k):
    entropies = []
    for b in range(local.shape[0]):
        for p in range(local.shape[1]):
            g = local[b, p] / np.linalg.norm(local[b, p])
            z = [scale * float(g @ (t / np.linalg.norm(t))) for t in pos]
            top = sorted(range(len(z)), key=lambda c: -z[c])[:k]
            if labels[b] in top:
                continue
            m = max(z)
            q = [math.exp(v - m) for v in z]
            q = [v / sum(q) for v in q]
            entropies.append(-sum(v * math.log(v) for v in q))
    return -sum(entropies) / len(entropies) if entropies else 0.0


@pytest.mark.parametrize(("k", "scale"), [(1, 1.0), (2, 10.0), (3, 100.0)])
def test_loss_against_float64_loop(k, scale):
    gen = torch.Generator().manual_seed(k)
    local = torch.randn(4, 6, 8, generator=gen, dtype=torch.float64)
    pos = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 3, 4, 1])
    got = LC.locoop_ood_loss(local, pos, labels, math.log(scale), k)
    ref = _reference(local.numpy(), pos.numpy(), labels.tolist(), scale, k)
    assert got.item() == pytest.approx(ref, rel=1e-5, abs=1e-6)
    assert -math.log(5) - 1e-6 <= got.item() <= 0


def test_no_selected_region_gives_zero_with_a_gradient():
    pos = torch.randn(3, 4, requires_grad=True)
    loss = LC.locoop_ood_loss(torch.randn(2, 5, 4), pos, torch.tensor([0, 2]), 0.0, top_k=3)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(pos.grad, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="top_k"):
        LC.locoop_ood_loss(torch.randn(2, 5, 4), pos, torch.tensor([0, 2]), 0.0, top_k=4)
    assert LC.default_top_k(1000) == 200 and LC.default_top_k(3) == 1


def test_local_features_are_cached(tiny_backbone, tmp_path):
    files = write_images(tmp_path / "img", 3, size=40)
    local = LC.extract_local_features(
        tiny_backbone, files, cache_dir=tmp_path / "cache", batch_size=2, progress=False
    )
    images = torch.stack([tiny_backbone.preprocess(Image.open(f)) for f in files])
    ref = encode_global_local(tiny_backbone, images)[1].numpy()
    assert local.dtype == np.float16 and local.shape == ref.shape
    np.testing.assert_allclose(local.astype(np.float32), ref, atol=2e-3)
    entries = list((tmp_path / "cache" / "local").iterdir())
    assert len(entries) == 1 and ".tmp" not in entries[0].name
    again = LC.extract_local_features(tiny_backbone, files, cache_dir=tmp_path / "cache", progress=False)
    assert np.array_equal(local, again) and len(list((tmp_path / "cache" / "local").iterdir())) == 1


def test_feature_source_local_batch_keeps_the_order():
    local = np.arange(5 * 2 * 3, dtype=np.float16).reshape(5, 2, 3)
    src = FeatureSource(torch.randn(5, 3), [0, 1, 0, 1, 0], 2, torch.device("cpu"), local)
    idx = torch.tensor([3, 0, 4])
    assert torch.equal(src.local_batch(idx), torch.from_numpy(local[[3, 0, 4]].astype(np.float32)))
    with pytest.raises(ValueError, match=r"\[N, P, D\]"):
        FeatureSource(torch.randn(4, 3), [0, 1, 0, 1], 2, torch.device("cpu"), local)


def test_training_with_the_regulariser(tiny_backbone):
    gen = torch.Generator().manual_seed(0)
    d = tiny_backbone.embed_dim
    feats = F.normalize(torch.randn(12, d, generator=gen), dim=-1)
    local = F.normalize(torch.randn(12, 16, d, generator=gen), dim=-1).numpy().astype(np.float16)
    labels = [i % 3 for i in range(12)]
    config = TrainConfig(stage=1, epochs=2, batch_size=4, select="last", locoop_weight=0.25, locoop_top_k=1)
    names = ["cat", "dog", "car"]
    result = train_prompts(tiny_backbone, names, feats, labels, config, local_features=local, progress=False)
    assert result.completed and all(h["ood"] < 0 for h in result.history)
    assert all(h["loss"] == pytest.approx(h["ce"] + 0.25 * h["ood"], rel=1e-5) for h in result.history)
    with pytest.raises(ValueError, match="local_features"):
        train_prompts(tiny_backbone, names, feats, labels, config, progress=False)
    with pytest.raises(ValueError, match="stage-1"):
        TrainConfig(stage=2, locoop_weight=0.25)
