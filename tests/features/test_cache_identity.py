"""A feature-cache entry belongs to one backbone (architecture, weights, seed, precision) and one transform.

Two extractions that would give different features must never share an entry: each test extracts
twice into one cache and checks that the second gets its own entry and its own features.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from torchvision import transforms as T

import negprompt.backbone as bb
from negprompt.backbone import TINY_MODEL, load_backbone
from negprompt.data.folders import image_folder
from negprompt.features import extract_features


def _tiny(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the random-weights warning
        return load_backbone(TINY_MODEL, "none", **kwargs)


def _two_entries(first, second, images, cache):
    a = extract_features(first, images, cache_dir=cache, progress=False)
    b = extract_features(second, images, cache_dir=cache, progress=False)
    return a, b


def test_random_weights_of_two_seeds_get_two_cache_entries(image_tree, tmp_path):
    images = image_folder(image_tree / "id")
    seed0, seed1 = _tiny(seed=0), _tiny(seed=1)
    assert seed0.identity() != seed1.identity()
    assert seed0.identity() == _tiny(seed=0).identity()
    a, b = _two_entries(seed0, seed1, images, tmp_path / "cache")
    assert a.path != b.path
    assert np.abs(np.asarray(a.features, np.float32) - b.features).max() > 1e-2
    fresh = extract_features(seed1, images, cache_dir=tmp_path / "fresh", progress=False)
    np.testing.assert_array_equal(b.features, fresh.features)
    again = extract_features(_tiny(seed=0), images, cache_dir=tmp_path / "cache", progress=False)
    assert again.path == a.path  # the same seed is a cache hit


def test_two_precisions_get_two_cache_entries(image_tree, tmp_path):
    images = image_folder(image_tree / "id")
    full, half = _tiny(), _tiny(precision="bf16")
    assert full.identity()["precision"] == "fp32" and half.identity()["precision"] == "bf16"
    a, b = _two_entries(full, half, images, tmp_path / "cache")
    assert a.path != b.path
    fresh = extract_features(half, images, cache_dir=tmp_path / "fresh", progress=False)
    np.testing.assert_array_equal(b.features, fresh.features)


def test_another_transform_gets_its_own_cache_entry(tiny_backbone, image_tree, tmp_path):
    images = image_folder(image_tree / "id")
    grey = T.Compose([T.Grayscale(num_output_channels=3), tiny_backbone.preprocess])
    other = dataclasses.replace(tiny_backbone, preprocess=grey)
    assert other.identity() == tiny_backbone.identity()  # only the transform differs
    a, b = _two_entries(tiny_backbone, other, images, tmp_path / "cache")
    assert a.path != b.path
    assert np.abs(np.asarray(a.features, np.float32) - b.features).max() > 1e-2


def test_the_architecture_config_is_part_of_the_identity(monkeypatch):
    backbone = _tiny()
    before = backbone.identity()
    real = bb.open_clip.get_model_config

    def widened(name):
        cfg = real(name)
        return {**cfg, "text_cfg": {**cfg["text_cfg"], "layers": cfg["text_cfg"]["layers"] + 1}}

    monkeypatch.setattr(bb.open_clip, "get_model_config", widened)
    after = backbone.identity()
    assert after["model_config"] != before["model_config"]
    assert {k for k in before if before[k] != after[k]} == {"model_config"}


@pytest.mark.parametrize("part", ["model", "weights", "weights_fingerprint", "precision"])
def test_every_identity_part_changes_the_cache_entry(tiny_backbone, image_tree, tmp_path, part):
    images = image_folder(image_tree / "id")
    changed = {"model": "ViT-B-32", "weights": "x.pt", "weights_fingerprint": "x", "precision": "fp16"}
    field = {"model": "name"}.get(part, part)
    other = dataclasses.replace(tiny_backbone, **{field: changed[part]})
    assert other.identity()[part] != tiny_backbone.identity()[part]
    a = extract_features(tiny_backbone, images, cache_dir=tmp_path, progress=False)
    b = extract_features(other, images, cache_dir=tmp_path, progress=False)
    assert a.path != b.path
