"""ImageSet: validation, subsets, relabelling and the cache fingerprint."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from negprompt.data import ImageSet


def _jpeg(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value, 0, 0)).save(path, "JPEG")


@pytest.fixture
def small_set(tmp_path) -> ImageSet:
    paths = ["a/1.jpg", "a/2.jpg", "b/1.jpg", "b/2.jpg", "ood.jpg"]
    for i, p in enumerate(paths):
        _jpeg(tmp_path / p, 10 * i)
    return ImageSet("toy", tmp_path, paths, [0, 0, 1, 1, -1], ("apple", "banana"))


def test_fields_are_normalised(small_set, tmp_path):
    assert isinstance(small_set.paths, tuple) and isinstance(small_set.labels, tuple)
    assert small_set.root == Path(os.path.abspath(tmp_path))
    assert len(small_set) == 5
    assert small_set.abspath(2) == tmp_path / "b" / "1.jpg"
    assert small_set.abspaths()[4] == str(tmp_path / "ood.jpg")
    assert small_set.labels_array.dtype == np.int64
    assert small_set.class_counts() == {"apple": 2, "banana": 2, "": 1}
    assert not small_set.is_ood


@pytest.mark.parametrize(
    ("paths", "labels", "names", "match"),
    [
        (["x.jpg", "y.jpg"], [0], ("c",), "2 paths but 1 labels"),
        (["x.jpg"], [1], ("c",), "out of range"),
        (["x.jpg"], [-2], ("c",), "out of range"),
        (["x.jpg"], [0], (), "out of range"),
        (["/abs/x.jpg"], [-1], (), "relative"),
        (["a/../x.jpg"], [-1], (), "relative"),
        ([""], [-1], (), "relative"),
    ],
)
def test_invalid_sets_are_rejected(tmp_path, paths, labels, names, match):
    with pytest.raises(ValueError, match=match):
        ImageSet("bad", tmp_path, paths, labels, names)


def test_subset_keeps_order_root_and_names(small_set):
    sub = small_set.subset([3, 0], name="pair")
    assert sub.paths == ("b/2.jpg", "a/1.jpg") and sub.labels == (1, 0)
    assert sub.name == "pair" and sub.root == small_set.root and sub.class_names == small_set.class_names
    mask = np.array([True, False, False, False, True])
    assert small_set.subset(mask).paths == ("a/1.jpg", "ood.jpg")
    assert small_set.subset(mask).name == "toy"
    with pytest.raises(IndexError):
        small_set.subset([5])


def test_relabel_and_as_ood(small_set):
    swapped = small_set.with_labels_remapped([1, 0], ("banana", "apple"))
    assert swapped.labels == (1, 1, 0, 0, -1)
    only_b = small_set.with_labels_remapped({1: 0}, ("banana",), drop_unmapped=True)
    assert only_b.paths == ("b/1.jpg", "b/2.jpg", "ood.jpg") and only_b.labels == (0, 0, -1)
    with pytest.raises(ValueError, match="not in the mapping"):
        small_set.with_labels_remapped({1: 0}, ("banana",))
    ood = small_set.as_ood("all-ood")
    assert ood.is_ood and ood.class_names == () and ood.paths == small_set.paths


def test_fingerprint_is_stable_and_tracks_every_input(small_set, tmp_path):
    fp = small_set.fingerprint()
    assert (
        fp
        == small_set.fingerprint()
        == ImageSet("toy", tmp_path, small_set.paths, small_set.labels, small_set.class_names).fingerprint()
    )
    assert len(fp) == 64
    variants = [
        ImageSet("other", tmp_path, small_set.paths, small_set.labels, small_set.class_names),
        ImageSet("toy", tmp_path, small_set.paths, [0, 1, 1, 1, -1], small_set.class_names),
        ImageSet("toy", tmp_path, small_set.paths, small_set.labels, ("apple", "cherry")),
        small_set.subset([0, 1, 2, 3]),
    ]
    assert len({fp, *(v.fingerprint() for v in variants)}) == 1 + len(variants)

    # Same size, new mtime -> new fingerprint.
    target = tmp_path / "a" / "1.jpg"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    fp2 = small_set.fingerprint()
    assert fp2 != fp
    # New content (other size) -> new fingerprint.
    target.write_bytes(target.read_bytes() + b"\0")
    assert small_set.fingerprint() not in (fp, fp2)


def test_fingerprint_names_missing_file(small_set, tmp_path):
    (tmp_path / "b" / "2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="2.jpg"):
        small_set.fingerprint()


def test_fingerprint_of_many_files_uses_all(tmp_path, monkeypatch):
    # More files than one stat chunk, so the thread pool path runs.
    import negprompt.data.imageset as imageset_module

    monkeypatch.setattr(imageset_module, "_STAT_CHUNK", 8)
    paths = [f"f{i:05d}.jpg" for i in range(50)]
    for p in paths:
        (tmp_path / p).write_bytes(b"x")
    s = ImageSet("many", tmp_path, paths, [-1] * len(paths))
    fp = s.fingerprint()
    monkeypatch.setattr(imageset_module, "_STAT_CHUNK", 4096)
    assert s.fingerprint() == fp  # the digest does not depend on the chunking
    monkeypatch.setattr(imageset_module, "_STAT_CHUNK", 8)
    (tmp_path / paths[-1]).write_bytes(b"xy")
    assert s.fingerprint() != fp
    (tmp_path / paths[20]).unlink()
    with pytest.raises(FileNotFoundError, match="f00020.jpg"):
        s.fingerprint()
