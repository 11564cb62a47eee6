"""The embedding map merges identical prompts, says so, and measures its neighbour preservation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from negprompt import viz


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_identical_groups_link_within_the_tolerance():
    rng = np.random.default_rng(0)
    a = unit(rng.normal(size=(4, 16)))
    near = unit(a[0] + 1e-4 * rng.normal(size=16))  # 1 − cos ~ 1e-8
    far = unit(a[0] + 0.1 * rng.normal(size=16))  # 1 − cos ~ 1e-2
    groups = viz.identical_groups(np.stack([*a, near, far]))
    assert groups.tolist() == [0, 1, 2, 3, 0, 5]


def test_map_points_merge_and_sentence():
    rng = np.random.default_rng(1)
    pos = unit(rng.normal(size=(3, 8)))
    neg = unit(rng.normal(size=(3, 2, 8)))
    neg[:2, 1] = neg[:2, 0]  # two of three classes have identical negatives
    meta_img = pd.DataFrame(
        {"row": [7, 9], "split": ["id", "ood"], "dataset": ["i", "far"], "label_name": ["a", ""]}
    )
    x, meta = viz.map_points(
        pos, neg, ["a", "b", "c"], image_features=unit(rng.normal(size=(2, 8))), image_meta=meta_img
    )
    prompts = meta[meta["kind"] != "image"]
    assert len(prompts) == 9 - 2 and prompts["count"].sum() == 9
    merged = prompts[prompts["count"] == 2]
    assert list(merged["group"]) == ["negative 1 = negative 2"] * 2
    assert merged["members"].iloc[0] == "a · neg 1, a · neg 2"
    assert list(meta.loc[meta["kind"] == "image", "group"]) == ["ID: a", "OOD: far"]
    assert list(meta.loc[meta["kind"] == "image", "row"]) == [7, 9]
    assert len(x) == len(meta)
    text = viz.map_sentence(meta, 9)
    assert text.startswith("9 prompts are drawn as 7 markers") and "same vector for 2 classes" in text
    _, plain = viz.map_points(pos, unit(rng.normal(size=(3, 2, 8))), ["a", "b", "c"])
    assert viz.map_sentence(plain, 9) == ""
    fig = viz.map_figure(np.zeros((len(meta), 2)), meta)
    assert [t.name for t in fig.data][-2:] == ["ID: a", "OOD: far"]
    assert list(fig.data[-1].customdata) == [9]


def test_trustworthiness_of_a_faithful_and_a_scrambled_map():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(size=(40, 2)), np.zeros((40, 6))], axis=1) + 5
    good = x[:, :2]
    bad = rng.permutation(good)
    assert viz.map_trustworthiness(x, good) > 0.95
    assert viz.map_trustworthiness(x, bad) < viz.map_trustworthiness(x, good) - 0.2
    assert np.isnan(viz.map_trustworthiness(x[:3], good[:3]))
    with pytest.raises(ValueError, match="coordinates"):
        viz.map_figure(np.zeros((1, 2)), pd.DataFrame({"group": [], "kind": []}))


def test_many_classes_share_one_trace_coloured_by_class():
    rng = np.random.default_rng(3)
    n = 30
    meta_img = pd.DataFrame(
        {"row": range(n), "split": "id", "dataset": "i", "label_name": [f"c{i}" for i in range(n)]}
    )
    pos = unit(rng.normal(size=(n, 8)))
    x, meta = viz.map_points(
        pos,
        None,
        [f"c{i}" for i in range(n)],
        image_features=unit(rng.normal(size=(n, 8))),
        image_meta=meta_img,
    )
    fig = viz.map_figure(np.zeros((len(meta), 2)), meta)
    assert [t.name for t in fig.data] == ["positive", "ID images (colour: class)"]
    assert list(fig.data[1].marker.color) == list(range(n)) and list(fig.data[1].customdata) == list(range(n))
