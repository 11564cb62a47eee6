"""Experiment data: generated ImageNet trees, protocols, open-vocabulary splits, bad layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from negprompt.data import LayoutError, imagenet_classes, protocol
from negprompt.experiments import ExperimentConfig, load_data
from tests.data.test_data_imagenet import SPLITS, _jpeg, make_imagenet

OOD_NAMES = ("iNaturalist", "SUN", "Places", "dtd")


def make_ood(data_root: Path, names=OOD_NAMES, n: int = 3) -> None:
    """``data_root/<name>/images/*.jpg`` for each OOD set (dtd nested in a class folder, as DTD is)."""
    for k, name in enumerate(names):
        folder = data_root / name / "images" / ("banded" if name == "dtd" else "")
        for i in range(n):
            _jpeg(folder / f"{name.lower()}_{i}.jpg", 40 * k + 7 * i)


def make_benchmark(data_root: Path, classes: list[int], *, n_train: int = 3, n_val: int = 2) -> Path:
    """A tiny ImageNet tree (flat val + LOC_val_solution.csv) and the four conventional OOD sets."""
    make_imagenet(data_root, classes, n_train=n_train, n_val=n_val, val="flat")
    make_ood(data_root)
    return data_root


def small(preset: str = "conventional", data_root: Path | str = "data", **overrides) -> ExperimentConfig:
    """A config for tiny runs: tiny random model, 2 shots, 1 validation image, 2 epochs."""
    values = dict(
        data_root=str(data_root),
        model="negprompt-tiny",
        pretrained="none",
        device="cpu",
        shots=2,
        val_per_class=1,
        epochs=2,
        train_batch_size=4,
        neglabel=False,  # NegLabel and LoCoOp end to end: tests/methods/test_neglabel.py
        locoop=False,
    )
    values.update(overrides)
    return ExperimentConfig.for_preset(preset, **values)


def test_conventional_lists_the_first_classes_and_all_ood_sets(tmp_path):
    make_benchmark(tmp_path, [0, 1, 2])
    data = load_data(small(data_root=tmp_path, classes=3))
    assert data.benchmark == "ImageNet-1k"
    assert data.class_names == ["tench", "goldfish", "great white shark"]
    assert data.train_classes == [0, 1, 2] and data.train_class_names == data.class_names
    assert (len(data.train), len(data.val), len(data.id_test)) == (6, 3, 6)
    assert set(data.train.paths).isdisjoint(data.val.paths)
    assert list(data.ood) == list(OOD_NAMES) and all(len(s) == 3 for s in data.ood.values())
    assert all(s.labels == (-1,) * 3 for name, s in data.ood.items() if name != "dtd")
    assert data.ood["dtd"].class_names == ("banded",) and data.ood["dtd"].labels == (0,) * 3
    assert tmp_path.joinpath(*SPLITS, "val") in data.roots
    assert data.describe()["ood"] == {n: 3 for n in OOD_NAMES}


def test_id_classes_by_synset_index_or_name(tmp_path):
    make_benchmark(tmp_path, [0, 1, 2])
    info = imagenet_classes()
    data = load_data(small(data_root=tmp_path, id_classes=[info[2].synset, "0", "Goldfish"]))
    assert data.class_names == ["great white shark", "tench", "goldfish"]


def test_hard_ood_removes_negative_classes_and_uses_unknown_val_images(tmp_path):
    p = protocol("P2")
    known, unknown = p.known[:2], p.unknown[:2]
    make_imagenet(tmp_path, known + unknown, n_train=3, n_val=2)
    data = load_data(small("hard-ood", tmp_path, protocol="P2", classes=2))
    info = imagenet_classes()
    assert data.class_names == [info[c].name for c in known]
    assert list(data.ood) == ["P2/ood"] and len(data.ood["P2/ood"]) == 4
    assert data.facts["protocol"]["known"] == known and data.facts["protocol"]["unknown"] == unknown
    negative_synsets = {info[c].synset for c in p.negative}
    for s in (data.train, data.val, data.id_test):
        assert not {path.split("/")[0] for path in s.paths} & negative_synsets
    csv = (tmp_path / "ImageNet1k" / "LOC_val_solution.csv").read_text()
    ood_ids = {path.removesuffix(".JPEG") for path in data.ood["P2/ood"].paths}
    unknown_synsets = {info[c].synset for c in unknown}
    for line in csv.splitlines()[1:]:
        image_id, rest = line.split(",")
        assert (image_id in ood_ids) == (rest.split()[0] in unknown_synsets)


def test_imagenet_100_is_tested_against_the_conventional_sets(tmp_path):
    known = protocol("ImageNet-100").known[:2]
    make_imagenet(tmp_path, known, n_train=3)
    make_ood(tmp_path, ("SUN",))
    data = load_data(small("hard-ood", tmp_path, protocol="ImageNet-100", classes=2, ood_sets=["SUN"]))
    assert list(data.ood) == ["SUN"]


def test_open_vocabulary_split_is_deterministic(tmp_path):
    make_benchmark(tmp_path, list(range(10)), n_train=3, n_val=1)
    first = load_data(small("open-vocab", tmp_path, classes=10, open_vocab_fraction=0.2))
    assert first.train_classes == [0, 1] and len(first.class_names) == 10
    assert first.train.class_names == tuple(first.class_names[:2]) and len(first.train) == 4
    assert first.id_test.num_classes == 10

    def draw(seed):
        cfg = small(
            "open-vocab", tmp_path, classes=10, open_vocab_fraction=0.3, open_vocab_mode="random",
            open_vocab_seed=seed,
        )  # fmt: skip
        return load_data(cfg)

    a, b = draw(3), draw(3)
    assert a.train_classes == b.train_classes and len(a.train_classes) == 3
    assert a.train.paths == b.train.paths
    assert a.train.class_names == tuple(a.class_names[i] for i in a.train_classes)
    assert {tuple(draw(s).train_classes) for s in range(6)} != {tuple(a.train_classes)}
    assert a.facts["open_vocab"]["train_classes"] == a.train_classes


def test_demo_classes_limit(tmp_path):
    data = load_data(small("demo", tmp_path / "root", classes=2, shots=3))
    assert data.class_names == ["t-shirt", "trouser"]
    assert (len(data.train), len(data.val), len(data.id_test)) == (6, 2, 128)
    assert list(data.ood) == ["demo/near-ood", "demo/far-ood"]
    with pytest.raises(ValueError, match=r"not classes of the demo ID set.*'t-shirt'"):
        load_data(small("demo", tmp_path / "root", id_classes=["coat"]))


def test_wrong_layout_shows_the_expected_tree(tmp_path):
    (tmp_path / "ImageNet1k" / "train").mkdir(parents=True)  # not the ILSVRC/Data/CLS-LOC layout
    with pytest.raises(LayoutError) as info:
        load_data(small(data_root=tmp_path, classes=2))
    text = str(info.value)
    assert "Expected layout" in text and "CLS-LOC/" in text and "<-- missing" in text


def test_missing_ood_set_is_an_error_unless_named(tmp_path):
    make_imagenet(tmp_path, [0, 1], n_train=3)
    make_ood(tmp_path, ("SUN", "dtd"))
    with pytest.raises(LayoutError) as info:
        load_data(small(data_root=tmp_path, classes=2))
    assert "OOD set 'iNaturalist' not found" in str(info.value) and "iNaturalist/" in str(info.value)
    data = load_data(small(data_root=tmp_path, classes=2, ood_sets=["SUN", "Textures"]))
    assert list(data.ood) == ["SUN", "dtd"]


def test_empty_class_folder_and_mismatching_class_lists(tmp_path):
    make_benchmark(tmp_path, [0, 1])
    with pytest.raises(FileNotFoundError, match="n01484850"):  # class 2 is not in the tree
        load_data(small(data_root=tmp_path, classes=3))
    with pytest.raises(ValueError, match="not an ImageNet-1k class"):
        load_data(small(data_root=tmp_path, id_classes=["n09999999"]))
    train = tmp_path.joinpath(*SPLITS, "train", imagenet_classes()[1].synset)
    for f in train.iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="holds no images"):
        load_data(small(data_root=tmp_path, classes=2))


def test_too_few_images_for_the_shots(tmp_path):
    make_benchmark(tmp_path, [0, 1], n_train=2)
    with pytest.raises(ValueError, match="fewer than the 3 images"):
        load_data(small(data_root=tmp_path, classes=2))
