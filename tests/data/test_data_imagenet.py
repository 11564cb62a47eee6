"""ImageNet-1k in the original layout: train synset folders, flat val + LOC_val_solution.csv, class-folder val."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from negprompt.data import LayoutError, imagenet_classes, imagenet_split, synset_to_index

SPLITS = ("ImageNet1k", "ILSVRC", "Data", "CLS-LOC")


def _jpeg(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value % 256, 0, 0)).save(path, "JPEG")


def make_imagenet(
    data_root: Path,
    classes: list[int],
    *,
    n_train: int = 2,
    n_val: int = 2,
    val: str = "flat",
    csv_at: str = "imagenet",
) -> dict[str, int]:
    """Write a tiny ImageNet tree; returns {val image id: class index}."""
    info = imagenet_classes()
    base = data_root.joinpath(*SPLITS)
    truth: dict[str, int] = {}
    counter = 0
    for c in classes:
        syn = info[c].synset
        for i in range(n_train):
            _jpeg(base / "train" / syn / f"{syn}_{i}.JPEG", c)
        for _ in range(n_val):
            counter += 1
            image_id = f"ILSVRC2012_val_{counter:08d}"
            truth[image_id] = c
            sub = "" if val == "flat" else f"{syn}/"
            _jpeg(base / "val" / f"{sub}{image_id}.JPEG", c)
    if val == "flat":
        csv_dir = data_root / "ImageNet1k" if csv_at == "imagenet" else base
        rows = ["ImageId,PredictionString"]
        rows += [f"{k},{info[c].synset} 1 2 3 4 {info[c].synset} 5 6 7 8" for k, c in truth.items()]
        (csv_dir / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    return truth


def test_class_table():
    info = imagenet_classes()
    assert len(info) == 1000 and info[0].synset == "n01440764" and info[0].name == "tench"
    assert [c.index for c in info] == list(range(1000))
    assert synset_to_index()["n01443537"] == 1


def test_train_split_all_present_classes(tmp_path):
    make_imagenet(tmp_path, [0, 1, 2], n_train=3)
    s = imagenet_split(tmp_path, "train", classes=[0, 1, 2])
    assert s.name == "ImageNet-1k/train" and len(s) == 9
    assert s.root == tmp_path.joinpath(*SPLITS, "train")
    assert s.class_names == ("tench", "goldfish", "great white shark")
    assert s.paths[0] == "n01440764/n01440764_0.JPEG" and s.labels == (0,) * 3 + (1,) * 3 + (2,) * 3


def test_classes_are_reindexed_in_given_order(tmp_path):
    make_imagenet(tmp_path, [0, 1, 2])
    s = imagenet_split(tmp_path, "train", classes=[2, 0])
    assert s.class_names == ("great white shark", "tench")
    assert s.labels == (0, 0, 1, 1) and s.paths[0].startswith("n01484850/")


@pytest.mark.parametrize("csv_at", ["imagenet", "cls-loc"])
def test_flat_val_with_solution_csv(tmp_path, csv_at):
    truth = make_imagenet(tmp_path, [0, 5, 7], n_val=3, csv_at=csv_at)
    s = imagenet_split(tmp_path, "val", classes=[7, 0])
    assert len(s) == 6 and s.class_names[0] == imagenet_classes()[7].name
    for p, label in zip(s.paths, s.labels):
        assert truth[p.removesuffix(".JPEG")] == [7, 0][label]
    assert s.labels == (0, 0, 0, 1, 1, 1)


def test_flat_and_folder_val_agree(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_imagenet(a, [3, 4], val="flat")
    make_imagenet(b, [3, 4], val="folders")
    fa, fb = imagenet_split(a, "val", [3, 4]), imagenet_split(b, "val", [3, 4])
    assert fa.labels == fb.labels
    assert [p.split("/")[-1] for p in fb.paths] == list(fa.paths)


def test_missing_imagenet_prints_tree_and_absent_part(tmp_path):
    (tmp_path / "ImageNet1k" / "ILSVRC").mkdir(parents=True)
    with pytest.raises(LayoutError) as info:
        imagenet_split(tmp_path, "train")
    text = str(info.value)
    assert "has no 'Data'" in text
    assert "CLS-LOC/" in text and "LOC_val_solution.csv" in text and "n01440764/" in text
    marked = [line for line in text.splitlines() if "<-- missing" in line]
    assert len(marked) == 1 and "Data/" in marked[0]


def test_missing_solution_csv(tmp_path):
    make_imagenet(tmp_path, [0, 1])
    (tmp_path / "ImageNet1k" / "LOC_val_solution.csv").unlink()
    with pytest.raises(FileNotFoundError) as info:
        imagenet_split(tmp_path, "val", [0, 1])
    text = str(info.value)
    assert "LOC_val_solution.csv" in text and "<-- missing" in text and "4 images" in text


def test_missing_synset_folder_is_named(tmp_path):
    make_imagenet(tmp_path, [0, 1])
    with pytest.raises(FileNotFoundError, match="n01484850"):
        imagenet_split(tmp_path, "train", [0, 1, 2])


def test_incomplete_flat_val_and_unlabelled_images(tmp_path):
    make_imagenet(tmp_path, [0, 1])
    val = tmp_path.joinpath(*SPLITS, "val")
    first = sorted(val.iterdir())[0]
    first.unlink()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        imagenet_split(tmp_path, "val", [0, 1])
    # Only the requested classes' images must exist.
    assert len(imagenet_split(tmp_path, "val", [1])) == 2
    _jpeg(val / "stray_image.JPEG")
    with pytest.raises(ValueError, match="no row"):
        imagenet_split(tmp_path, "val", [1])


def test_empty_synset_folder_and_bad_arguments(tmp_path):
    make_imagenet(tmp_path, [0])
    tmp_path.joinpath(*SPLITS, "train", imagenet_classes()[1].synset).mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        imagenet_split(tmp_path, "train", [0, 1])
    with pytest.raises(ValueError, match="'train' or 'val'"):
        imagenet_split(tmp_path, "test")
    with pytest.raises(ValueError, match="0..999"):
        imagenet_split(tmp_path, "train", [1000])
    with pytest.raises(ValueError, match="more than once"):
        imagenet_split(tmp_path, "train", [0, 0])
