"""Few-shot sampling with a disjoint validation split, and open-vocabulary class subsets."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from negprompt.data import ImageSet, class_subset, few_shot_split


def make_set(tmp_path, per_class=(30, 25, 40), shuffle_seed=None, names=("cat", "dog", "owl")) -> ImageSet:
    items = [(f"{names[c]}/{i:03d}.jpg", c) for c, n in enumerate(per_class) for i in range(n)]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(items)
    return ImageSet("toy/train", tmp_path, [p for p, _ in items], [c for _, c in items], names)


def test_counts_disjoint_and_labels(tmp_path):
    s = make_set(tmp_path)
    train, val = few_shot_split(s, shots=16, val_per_class=4, seed=0)
    assert len(train) == 48 and len(val) == 12
    assert train.class_counts() == {"cat": 16, "dog": 16, "owl": 16}
    assert val.class_counts() == {"cat": 4, "dog": 4, "owl": 4}
    assert not set(train.paths) & set(val.paths)
    for sub in (train, val):
        for p, label in zip(sub.paths, sub.labels):
            assert p.startswith(s.class_names[label] + "/")
    assert train.name == "toy/train/16-shot-seed0" and val.name == "toy/train/val-seed0"
    assert list(train.labels) == sorted(train.labels)


def test_deterministic_and_independent_of_listing_order(tmp_path):
    a = few_shot_split(make_set(tmp_path), shots=5, val_per_class=3, seed=7)
    b = few_shot_split(make_set(tmp_path, shuffle_seed=1), shots=5, val_per_class=3, seed=7)
    assert a[0].paths == b[0].paths and a[1].paths == b[1].paths
    c = few_shot_split(make_set(tmp_path), shots=5, val_per_class=3, seed=8)
    assert c[0].paths != a[0].paths


def test_train_set_does_not_depend_on_val_size_or_other_classes(tmp_path):
    s = make_set(tmp_path)
    t4, _ = few_shot_split(s, shots=8, val_per_class=4, seed=3)
    t0, v0 = few_shot_split(s, shots=8, val_per_class=0, seed=3)
    assert t4.paths == t0.paths and len(v0) == 0
    # The same class keeps its images in a set that lists other classes.
    other = ImageSet("x", tmp_path, [p for p in s.paths if p.startswith("dog/")], [0] * 25, ("dog",))
    t_dog, _ = few_shot_split(other, shots=8, val_per_class=4, seed=3)
    assert t_dog.paths == tuple(p for p in t4.paths if p.startswith("dog/"))


def test_classes_with_the_same_name_draw_differently(tmp_path):
    paths = [f"{d}/{i:02d}.jpg" for d in ("a", "b") for i in range(30)]
    s = ImageSet("dup", tmp_path, paths, [0] * 30 + [1] * 30, ("missile", "missile"))
    train, _ = few_shot_split(s, shots=8, val_per_class=0, seed=0)
    picked = [{p.split("/")[1] for p, lab in zip(train.paths, train.labels) if lab == c} for c in (0, 1)]
    assert picked[0] != picked[1]


def test_all_shots_and_too_few(tmp_path):
    s = make_set(tmp_path, per_class=(6, 10, 3))
    with pytest.raises(ValueError, match="'owl' \\(3\\)"):
        few_shot_split(s, shots=5, val_per_class=2)
    train, val = few_shot_split(s, shots=5, val_per_class=2, strict=False)
    assert train.class_counts() == {"cat": 5, "dog": 5, "owl": 3}
    assert val.class_counts() == {"cat": 1, "dog": 2, "owl": 0}
    train_all, val_all = few_shot_split(s, shots=None, val_per_class=2)
    assert len(train_all) + len(val_all) == len(s) and not set(train_all.paths) & set(val_all.paths)
    assert train_all.name.endswith("/all-shot-seed0")


def test_rejects_ood_images_and_bad_arguments(tmp_path):
    s = ImageSet("o", tmp_path, ["a.jpg", "b.jpg"], [0, -1], ("c",))
    with pytest.raises(ValueError, match="OOD"):
        few_shot_split(s, shots=1, val_per_class=0)
    with pytest.raises(ValueError, match="shots"):
        few_shot_split(make_set(tmp_path), shots=0)


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=5, max_value=12), min_size=1, max_size=5),
    shots=st.integers(min_value=1, max_value=3),
    val=st.integers(min_value=0, max_value=2),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_property_disjoint_and_balanced(tmp_path_factory, counts, shots, val, seed):
    names = tuple(f"class{i}" for i in range(len(counts)))
    s = make_set(tmp_path_factory.getbasetemp(), per_class=counts, names=names)
    train, v = few_shot_split(s, shots=shots, val_per_class=val, seed=seed)
    assert not set(train.paths) & set(v.paths)
    assert set(train.paths) | set(v.paths) <= set(s.paths)
    assert np.all(np.bincount(train.labels_array, minlength=len(counts)) == shots)
    assert len(v) == val * len(counts)


def test_class_subset_first_and_random():
    assert class_subset(1000) == list(range(100))
    assert class_subset(1000, 0.1, mode="first") == list(range(100))
    assert class_subset(6, 0.1) == [0]
    assert class_subset(10, 0.25) == [0, 1, 2]
    r = class_subset(1000, 0.1, seed=5)
    assert r == class_subset(1000, 0.1, seed=5, mode="random")
    assert len(r) == 100 and r == sorted(r) and len(set(r)) == 100 and r != list(range(100))
    assert class_subset(1000, 0.1, seed=6) != r
    assert class_subset(4, 1.0, seed=1) == [0, 1, 2, 3]


def test_class_subset_errors():
    with pytest.raises(ValueError, match="needs a seed"):
        class_subset(10, 0.5, mode="random")
    with pytest.raises(ValueError, match="takes no seed"):
        class_subset(10, 0.5, seed=1, mode="first")
    with pytest.raises(ValueError, match="fraction"):
        class_subset(10, 0.0)
    with pytest.raises(ValueError, match="mode"):
        class_subset(10, 0.5, seed=1, mode="middle")
