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
    # The same rows in the same order. Values agree to float16 rounding only: a batch of 8 and one
    # of 15 may take different matrix-multiply kernels (thread count, load), which can move the last
    # bit; each shard row must still be closest to its own row of the full entry.
    joined = np.concatenate([p.features for p in parts]).astype(np.float32)
    whole = np.asarray(full.features, dtype=np.float32)
    np.testing.assert_allclose(joined, whole, rtol=0, atol=2e-3)
    assert (np.argmax(joined @ whole.T, axis=1) == np.arange(len(whole))).all()
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
        UserWarning,
        match=r"1 of 9 images .* cannot be read and are left out, by reason: not an image format PIL can decode: 1 \(first: .*bad\.png\)",
    ):
        feats = extract_features(
            tiny_backbone, images, cache_dir=tmp_path / "a", max_bad_fraction=1 / 9, progress=False
        )
    assert len(feats) == 8 and feats.meta["dropped"] == ["bad.png"] and feats.features.shape == (8, 64)
    assert list(feats.labels) == [-1] * 8
    with pytest.raises(
        ValueError, match=r"1 of 9 images of 'few' cannot be read, by reason: .*raise max_bad_fraction"
    ):
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


def _with_a_broken_image(image_tree):
    """A labelled set of 10 images whose 7th is not an image, and the same set without it."""
    write_images(image_tree / "mixed" / "a", 5, seed=300)
    write_images(image_tree / "mixed" / "b", 4, seed=301)
    (image_tree / "mixed" / "b" / "img_301_000x.png").write_bytes(b"not an image")
    images = image_folder(image_tree / "mixed")
    bad = [i for i, p in enumerate(images.paths) if p.endswith("000x.png")]
    assert bad == [6] and len(images) == 10
    good = [i for i in range(len(images)) if i not in bad]
    clean = dataclasses.replace(
        images, paths=tuple(images.paths[i] for i in good), labels=tuple(images.labels[i] for i in good)
    )
    return images, clean, bad[0]


def test_rows_after_a_dropped_image_keep_their_own_features(tiny_backbone, image_tree, tmp_path):
    images, clean, bad = _with_a_broken_image(image_tree)
    expect = extract_features(tiny_backbone, clean, cache_dir=tmp_path / "clean", progress=False)
    with pytest.warns(UserWarning, match="1 of 10 images"):
        got = extract_features(
            tiny_backbone,
            images,
            cache_dir=tmp_path / "c",
            max_bad_fraction=0.1,
            batch_size=4,
            progress=False,
        )
    np.testing.assert_allclose(got.features, expect.features, atol=1e-3)  # float16 rounding of a batch
    np.testing.assert_array_equal(got.labels, expect.labels)
    assert got.paths == expect.paths and got.meta["dropped"] == [images.paths[bad]]
    # the second shard (rows 5..9) holds the bad image: its kept rows are rows 5, 7, 8, 9 of the set
    with pytest.warns(UserWarning, match="1 of 5 images"):
        shard = extract_features(
            tiny_backbone,
            images,
            cache_dir=tmp_path / "s",
            shard=(1, 2),
            max_bad_fraction=0.2,
            progress=False,
        )
    np.testing.assert_allclose(shard.features, expect.features[5:], atol=1e-3)
    assert shard.paths == expect.paths[5:] and shard.meta["rows"] == [5, 10]
    np.testing.assert_array_equal(shard.labels, expect.labels[5:])


def test_a_shard_without_rows_is_an_empty_entry(tiny_backbone, image_tree, tmp_path):
    images = image_folder(image_tree / "id")  # 15 images over 4 ranks of 4: rank 3 holds 3 rows
    few = dataclasses.replace(images, paths=images.paths[:2], labels=images.labels[:2])
    empty = extract_features(tiny_backbone, few, cache_dir=tmp_path, shard=(3, 4), progress=False)
    assert empty.features.shape == (0, 64) and empty.labels.shape == (0,) and empty.paths == []
    assert empty.labels.dtype == np.int64 and empty.features.dtype == np.float16
    assert empty.meta["rows"] == [2, 2] and len(load_cached(empty.path)) == 0


def test_a_set_of_unreadable_images_is_an_error_at_any_limit(tiny_backbone, image_tree, tmp_path):
    for i in range(3):
        (image_tree / "junk" / f"bad{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (image_tree / "junk" / f"bad{i}.png").write_bytes(b"garbage")
    images = image_folder(image_tree / "junk", ood=True)
    with pytest.raises(
        ValueError,
        match=r"^3 of 3 images of 'junk' cannot be read, by reason: not an image format PIL can decode: 3 \(first: .*bad0\.png",
    ):
        extract_features(tiny_backbone, images, cache_dir=tmp_path, max_bad_fraction=1.0, progress=False)


def test_a_full_disk_fails_before_encoding_and_no_preallocation_is_fine(
    tiny_backbone, image_tree, tmp_path, monkeypatch
):
    import errno
    import os

    import negprompt.features as features

    images = image_folder(image_tree / "id")
    calls = []

    def full(fd, offset, size):
        calls.append(size)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(features.os, "posix_fallocate", full, raising=False)
    monkeypatch.setattr(type(tiny_backbone), "encode_images", lambda self, x: pytest.fail("encoded"))
    with pytest.raises(OSError, match=r"No space left on device.*features\.npy") as err:
        extract_features(tiny_backbone, images, cache_dir=tmp_path / "a", progress=False)
    assert err.value.errno == errno.ENOSPC
    assert calls and calls[0] >= 15 * 64 * 2  # the whole float16 array, header included
    monkeypatch.undo()

    def unsupported(fd, offset, size):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(features.os, "posix_fallocate", unsupported, raising=False)
    feats = extract_features(tiny_backbone, images, cache_dir=tmp_path / "b", progress=False)
    assert feats.features.shape == (15, 64)


def _interrupt_once(backbone, monkeypatch, after_calls: int) -> list[int]:
    """Stop the image encoder once (KeyboardInterrupt) after ``after_calls`` calls; the rows of every call."""
    real = type(backbone).encode_images
    rows, stopped = [], []

    def flaky(self, x):
        if len(rows) == after_calls and not stopped:
            stopped.append(True)
            raise KeyboardInterrupt
        rows.append(len(x))
        return real(self, x)

    monkeypatch.setattr(type(backbone), "encode_images", flaky)
    return rows


def test_a_resumed_shard_with_a_dropped_image_encodes_only_its_remaining_rows(
    tiny_backbone, image_tree, tmp_path, monkeypatch
):
    images, clean, _ = _with_a_broken_image(image_tree)  # rows 5..9 hold the broken image (row 6)
    expect = extract_features(
        tiny_backbone, clean, cache_dir=tmp_path / "clean", batch_size=2, progress=False
    )
    args = dict(cache_dir=tmp_path / "c", shard=(1, 2), max_bad_fraction=0.2, batch_size=2, progress=False)
    rows = _interrupt_once(tiny_backbone, monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        extract_features(tiny_backbone, images, **args)
    assert rows == [1]  # the first batch: row 5 encoded, row 6 unreadable
    with pytest.warns(UserWarning, match="1 of 5 images"):
        shard = extract_features(tiny_backbone, images, **args)
    assert rows == [1, 2, 1]  # resumed at row 7: rows 7-8, then row 9
    np.testing.assert_allclose(shard.features, expect.features[5:], atol=1e-3)
    assert shard.paths == expect.paths[5:] and shard.meta["dropped"] == [images.paths[6]]


def test_an_extraction_stopped_before_its_first_batch_restarts_from_row_0(
    tiny_backbone, image_tree, tmp_path, monkeypatch
):
    images = image_folder(image_tree / "id")
    clean = extract_features(
        tiny_backbone, images, cache_dir=tmp_path / "clean", batch_size=8, progress=False
    )
    rows = _interrupt_once(tiny_backbone, monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        extract_features(tiny_backbone, images, cache_dir=tmp_path / "c", batch_size=8, progress=False)
    resumed = extract_features(tiny_backbone, images, cache_dir=tmp_path / "c", batch_size=8, progress=False)
    assert rows == [8, 7]
    np.testing.assert_array_equal(resumed.features, clean.features)
