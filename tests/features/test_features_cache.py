"""The feature cache's folder, shards, partial entries and bad-image limits, in one process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from negprompt.data.folders import image_folder
from negprompt.features import (
    cache_key,
    default_cache_dir,
    extract_features,
    key_digest,
    load_cached,
    shard_range,
)
from tests.conftest import write_images


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NEGPROMPT_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.setenv("NEGPROMPT_CACHE", "~/feats")
    assert default_cache_dir() == Path.home() / "feats"
    monkeypatch.delenv("NEGPROMPT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "negprompt" / "features"


@pytest.mark.parametrize(("n", "world"), [(10, 3), (15, 4), (2, 4), (8, 2), (1, 1)])
def test_shards_are_contiguous_and_cover_every_row_once(n, world):
    ranges = [shard_range(n, rank, world) for rank in range(world)]
    rows = [i for start, stop in ranges for i in range(start, stop)]
    assert rows == list(range(n))
    per = -(-n // world)
    assert all(stop - start <= per for start, stop in ranges)
    assert ranges[0] == (0, min(n, per))


def test_shard_entries_hold_their_rows_of_the_full_entry(tiny_backbone, image_tree, tmp_path):
    images = image_folder(image_tree / "id")
    full = extract_features(tiny_backbone, images, cache_dir=tmp_path / "full", progress=False)
    cache = tmp_path / "shards"
    parts = [
        extract_features(tiny_backbone, images, cache_dir=cache, shard=(r, 2), progress=False)
        for r in range(2)
    ]
    digest = full.path.name
    assert sorted(p.name for p in cache.iterdir()) == [f"{digest}.shard0of2", f"{digest}.shard1of2"]
    assert [p.meta["rows"] for p in parts] == [[0, 8], [8, 15]]
    np.testing.assert_array_equal(np.concatenate([p.features for p in parts]), full.features)
    np.testing.assert_array_equal(np.concatenate([p.labels for p in parts]), full.labels)
    assert parts[0].paths + parts[1].paths == full.paths
    again = extract_features(tiny_backbone, images, cache_dir=cache, shard=(1, 2), progress=False)
    assert again.path == parts[1].path and again.meta == parts[1].meta


def test_complete_entry_records_its_key_and_count(tiny_backbone, image_tree, tmp_path):
    images = image_folder(image_tree / "id")
    feats = extract_features(tiny_backbone, images, cache_dir=tmp_path, progress=False)
    key = cache_key(tiny_backbone, images, 0, 0, tiny_backbone.preprocess)
    assert feats.path == tmp_path / key_digest(key)
    recorded = {k: feats.meta[k] for k in ("key", "count", "dropped", "rows")}
    assert recorded == {"key": key, "count": 15, "dropped": [], "rows": [0, 15]}
    assert set(feats.meta["sizes"]) == {"features.npy", "labels.npy", "paths.json"}  # checked on load
    assert json.loads((feats.path / "meta.json").read_text()) == feats.meta
    assert sorted(p.name for p in feats.path.iterdir()) == [
        "features.npy",
        "labels.npy",
        "meta.json",
        "paths.json",
    ]
    assert len(load_cached(feats.path)) == 15
    np.testing.assert_array_equal(feats.tensor().numpy(), np.asarray(feats.features, np.float32))


def test_seed_matters_only_for_augmented_views(tiny_backbone, image_tree):
    images = image_folder(image_tree / "id")
    t = tiny_backbone.preprocess
    assert cache_key(tiny_backbone, images, 0, 3, t) == cache_key(tiny_backbone, images, 0, 0, t)
    assert cache_key(tiny_backbone, images, 1, 3, t)["seed"] == 3


def test_a_partial_entry_of_another_key_is_restarted(tiny_backbone, image_tree, tmp_path):
    images = image_folder(image_tree / "id")
    clean = extract_features(tiny_backbone, images, cache_dir=tmp_path / "clean", progress=False)
    part = tmp_path / "cache" / f"{clean.path.name}.partial"
    part.mkdir(parents=True)
    np.save(part / "features.npy", np.ones((15, 64), np.float16))
    (part / "progress.json").write_text(json.dumps({"key": {"other": 1}, "done": 12, "bad": [3]}))
    feats = extract_features(tiny_backbone, images, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(feats.features, clean.features)
    assert feats.meta["dropped"] == []


def test_the_bad_image_limit_is_a_fraction_of_the_set(tiny_backbone, image_tree, tmp_path):
    for i in range(8):
        write_images(image_tree / "few", 1, seed=200 + i)
    (image_tree / "few" / "bad.png").write_bytes(b"no image")
    images = image_folder(image_tree / "few", ood=True)
    with pytest.warns(
        UserWarning, match=r"1 of 9 images .* cannot be read and are left out \(first: .*bad\.png\)"
    ):
        feats = extract_features(
            tiny_backbone, images, cache_dir=tmp_path / "a", max_bad_fraction=1 / 9, progress=False
        )
    assert len(feats) == 8 and feats.meta["dropped"] == ["bad.png"] and feats.features.shape == (8, 64)
    assert list(feats.labels) == [-1] * 8
    with pytest.raises(ValueError, match=r"1 of 9 images of 'few' cannot be read .*raise max_bad_fraction"):
        extract_features(
            tiny_backbone, images, cache_dir=tmp_path / "b", max_bad_fraction=0.1, progress=False
        )


def test_a_complete_entry_is_read_back_without_encoding(tiny_backbone, image_tree, tmp_path, monkeypatch):
    images = image_folder(image_tree / "id")
    first = extract_features(tiny_backbone, images, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(
        type(tiny_backbone), "encode_images", lambda self, x: pytest.fail("cache hit expected")
    )
    again = extract_features(tiny_backbone, images, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(again.features, first.features)


def test_an_empty_set_is_refused_and_a_single_image_is_fine(tiny_backbone, image_tree, tmp_path):
    write_images(image_tree / "one" / "cat", 1, seed=5)
    single = extract_features(
        tiny_backbone, image_folder(image_tree / "one"), cache_dir=tmp_path, progress=False
    )
    assert single.features.shape == (1, 64)
    empty = dataclasses.replace(image_folder(image_tree / "one"), paths=(), labels=())
    with pytest.raises(ValueError, match="has no images"):
        extract_features(tiny_backbone, empty, cache_dir=tmp_path, progress=False)
