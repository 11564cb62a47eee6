import json
import os

import numpy as np
import pytest
import torch

from negprompt.data.folders import image_folder
from negprompt.features import extract_features, key_digest, load_cached
from tests.conftest import write_images


def _reference(backbone, imageset):
    xs = []
    for i in range(len(imageset)):
        from PIL import Image

        with Image.open(imageset.abspath(i)) as im:
            xs.append(backbone.preprocess(im))
    return backbone.encode_images(torch.stack(xs)).numpy()


def test_features_match_direct_encoding_and_are_reused(tiny_backbone, image_tree, tmp_path):
    images = image_folder(image_tree / "id")
    cache = tmp_path / "cache"
    first = extract_features(tiny_backbone, images, cache_dir=cache, batch_size=4, progress=False)
    assert first.features.dtype == np.float16 and first.features.shape == (15, 64)
    assert isinstance(first.features, np.memmap)
    np.testing.assert_array_equal(first.labels, np.asarray(images.labels))
    assert first.paths == list(images.paths)
    np.testing.assert_allclose(first.features, _reference(tiny_backbone, images), atol=2e-3)
    entries = sorted(p.name for p in cache.iterdir())
    again = extract_features(tiny_backbone, images, cache_dir=cache, progress=False)
    assert again.path == first.path and sorted(p.name for p in cache.iterdir()) == entries


def test_any_key_change_makes_a_new_entry(tiny_backbone, image_tree, tmp_path):
    cache = tmp_path / "cache"
    images = image_folder(image_tree / "id")
    base = extract_features(tiny_backbone, images, cache_dir=cache, progress=False).path
    view1 = extract_features(tiny_backbone, images, cache_dir=cache, view=1, progress=False).path
    view1_seed = extract_features(tiny_backbone, images, cache_dir=cache, view=1, seed=5, progress=False).path
    write_images(image_tree / "id" / "cat", 1, seed=42)  # the dataset changed
    changed = extract_features(
        tiny_backbone, image_folder(image_tree / "id"), cache_dir=cache, progress=False
    )
    assert len({base, view1, view1_seed, changed.path}) == 4
    assert len(changed) == 16


def test_augmented_views_are_seeded_and_differ_from_the_test_view(tiny_backbone, image_tree, tmp_path):
    images = image_folder(image_tree / "id")
    a = extract_features(tiny_backbone, images, cache_dir=tmp_path / "a", view=1, seed=3, progress=False)
    b = extract_features(tiny_backbone, images, cache_dir=tmp_path / "b", view=1, seed=3, progress=False)
    test_view = extract_features(tiny_backbone, images, cache_dir=tmp_path / "a", progress=False)
    np.testing.assert_array_equal(a.features, b.features)
    assert np.abs(np.asarray(a.features, np.float32) - test_view.features).max() > 1e-3


def test_interrupted_extraction_never_leaves_a_loadable_cache_and_resumes(
    tiny_backbone, image_tree, tmp_path, monkeypatch
):
    images = image_folder(image_tree / "id")
    cache = tmp_path / "cache"
    calls = {"n": 0}
    real = type(tiny_backbone).encode_images

    def flaky(self, x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(type(tiny_backbone), "encode_images", flaky)
    with pytest.raises(KeyboardInterrupt):
        extract_features(tiny_backbone, images, cache_dir=cache, batch_size=4, progress=False)
    folders = list(cache.iterdir())
    assert len(folders) == 1 and folders[0].name.endswith(".partial")
    with pytest.raises(FileNotFoundError):
        load_cached(folders[0])
    progress = json.loads((folders[0] / "progress.json").read_text())
    assert progress["done"] == 8
    monkeypatch.setattr(type(tiny_backbone), "encode_images", real)
    resumed = extract_features(tiny_backbone, images, cache_dir=cache, batch_size=4, progress=False)
    clean = extract_features(
        tiny_backbone, images, cache_dir=tmp_path / "clean", batch_size=4, progress=False
    )
    np.testing.assert_array_equal(resumed.features, clean.features)
    assert [p.name for p in cache.iterdir()] == [resumed.path.name]


def test_a_few_unreadable_images_are_dropped_with_a_warning(tiny_backbone, image_tree, tmp_path):
    for i in range(100):
        write_images(image_tree / "many", 1, seed=100 + i)
    (image_tree / "many" / "broken.png").write_bytes(b"not an image at all")
    images = image_folder(image_tree / "many", ood=True)
    with pytest.warns(UserWarning, match=r"1 of 101 images .*broken\.png"):
        feats = extract_features(
            tiny_backbone, images, cache_dir=tmp_path / "c", batch_size=32, progress=False
        )
    assert len(feats) == 100 and "broken.png" not in feats.paths
    assert feats.meta["dropped"] == ["broken.png"]


def test_many_unreadable_images_are_an_error(tiny_backbone, image_tree, tmp_path):
    for i in range(3):
        (image_tree / "ood" / f"bad{i}.png").write_bytes(b"garbage")
    images = image_folder(image_tree / "ood", ood=True)
    with pytest.raises(ValueError, match=r"3 of 9 images .*cannot be read"):
        extract_features(tiny_backbone, images, cache_dir=tmp_path / "c", progress=False)
    assert not any(p.suffix != ".partial" for p in (tmp_path / "c").iterdir())


def test_cache_key_digest_is_stable():
    key = {"b": 1, "a": [1, 2]}
    assert key_digest(key) == key_digest({"a": [1, 2], "b": 1})
    assert key_digest(key) != key_digest({"a": [1, 2], "b": 2})
    assert os.sep not in key_digest(key)
