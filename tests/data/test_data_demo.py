"""The embedded demo: package data, materialization, idempotence, and offline errors of downloads."""

from __future__ import annotations

import json
import os
import urllib.error
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from negprompt.data import (
    FASHION_CLASSES,
    ID_CLASSES,
    NEAR_OOD_CLASSES,
    DownloadError,
    cifar,
    load_digits_images,
    load_fashion_subset,
    materialize_demo,
)
from negprompt.data.demo import folder_name


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    materialize_demo(root)
    return root


def test_package_data_is_balanced_and_licensed():
    res = resources.files("negprompt.data").joinpath("resources")
    d = load_fashion_subset()
    for split in ("train", "test"):
        imgs, labels = d[f"{split}_images"], d[f"{split}_labels"]
        assert imgs.shape == (640, 28, 28) and imgs.dtype == np.uint8
        assert np.bincount(labels, minlength=10).tolist() == [64] * 10
        assert len(np.unique(d[f"{split}_source_index"])) == 640
    assert tuple(d["class_names"].tolist()) == FASHION_CLASSES
    assert json.loads(str(d["meta_json"]))["dataset"] == "Fashion-MNIST"
    lic = res.joinpath("FASHION_MNIST_LICENSE.txt").read_text()
    assert "Copyright (c) 2017 Zalando SE" in lic and "MIT" in lic
    npz_size = len(res.joinpath("fashion_mnist_subset.npz").read_bytes())
    assert npz_size < 1.5e6


def test_id_and_near_ood_classes_partition_fashion():
    assert set(ID_CLASSES) | set(NEAR_OOD_CLASSES) == set(FASHION_CLASSES)
    assert not set(ID_CLASSES) & set(NEAR_OOD_CLASSES)


def test_digits_subset_is_seeded():
    a, ia = load_digits_images(300, 0)
    b, ib = load_digits_images(300, 0)
    assert a.shape == (300, 8, 8) and a.dtype == np.uint8 and a.max() == 255
    assert np.array_equal(a, b) and np.array_equal(ia, ib) and list(ia) == sorted(ia)
    assert not np.array_equal(load_digits_images(300, 1)[1], ia)
    from negprompt.miniworld.sources import digits

    assert not set(ia) & set(digits("pretrain")[2])  # never seen by negprompt-mini in pretraining


def test_materialized_counts_labels_and_layout(demo_root):
    d = materialize_demo(demo_root)
    assert d.root == demo_root / "demo"
    assert d.class_names == ID_CLASSES
    assert len(d.id_train) == len(d.id_test) == 6 * 64
    assert d.id_train.class_counts() == dict.fromkeys(ID_CLASSES, 64)
    assert len(d.near_ood) == 4 * 64 and len(d.far_ood) == 300 and d.far_ood.is_ood
    # near-OOD images keep their own (held-out) class, never an ID class
    assert d.near_ood.class_names == NEAR_OOD_CLASSES
    assert d.near_ood.class_counts() == dict.fromkeys(NEAR_OOD_CLASSES, 64)
    assert all(
        p.split("/")[0] == folder_name(NEAR_OOD_CLASSES[y])
        for p, y in zip(d.near_ood.paths, d.near_ood.labels)
    )
    assert set(d.ood) == {"demo/near-ood", "demo/far-ood"}
    assert not set(d.id_test.paths) & set(d.near_ood.paths)
    assert {p.split("/")[0] for p in d.near_ood.paths} == {"coat", "shirt", "sneaker", "ankle_boot"}
    for split in ("train", "test"):
        assert sorted(os.listdir(demo_root / "demo" / "fashion" / split)) == sorted(
            c.replace(" ", "_") for c in FASHION_CLASSES
        )
    # Pixels round-trip: the first ID training image equals the packaged array it came from.
    src = load_fashion_subset()
    first = d.id_train.paths[0]  # "t-shirt/train-NNNNN.png"
    idx = int(first.split("-")[-1].split(".")[0])
    row = int(np.flatnonzero(src["train_source_index"] == idx)[0])
    assert src["train_labels"][row] == FASHION_CLASSES.index(d.id_train.class_names[d.id_train.labels[0]])
    assert np.array_equal(np.asarray(Image.open(d.id_train.abspath(0))), src["train_images"][row])
    assert Image.open(d.far_ood.abspath(0)).size == (8, 8)


def test_idempotent_reuse_and_repair(demo_root):
    d = materialize_demo(demo_root)
    target = d.id_test.abspath(5)
    mtime = target.stat().st_mtime_ns
    fp = d.id_test.fingerprint()
    again = materialize_demo(demo_root)
    assert again == d and target.stat().st_mtime_ns == mtime and again.id_test.fingerprint() == fp

    # A changed file changes the fingerprint, and the next materialization restores the folder.
    original = target.read_bytes()
    Image.new("L", (28, 28), 7).save(target)
    assert target.read_bytes() != original
    assert d.id_test.fingerprint() != fp
    restored = materialize_demo(demo_root)
    assert restored.id_test.paths == d.id_test.paths
    assert target.read_bytes() == original
    # An extra image is not silently added to a set: the folder is rewritten.
    Image.new("L", (28, 28), 0).save(demo_root / "demo" / "digits" / "extra.png")
    assert len(materialize_demo(demo_root).far_ood) == 300
    assert not [p for p in os.listdir(demo_root) if p.startswith(".demo") and p != ".demo.lock"]


def _offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_full_demo_fails_fast_offline(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd, "FashionMNIST", _offline)
    with pytest.raises(DownloadError) as e:
        materialize_demo(tmp_path, full=True)
    text = str(e.value)
    assert "FashionMNIST" in text and "internet" in text and str(tmp_path / "downloads") in text
    assert not (tmp_path / "demo-full").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".demo-full") and p != ".demo-full.lock"]


def test_cifar_fails_fast_offline(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd, "CIFAR10", _offline)
    with pytest.raises(DownloadError, match="CIFAR10"):
        cifar(tmp_path, which=10)
    with pytest.raises(ValueError, match="10 or 100"):
        cifar(tmp_path, which=20)
