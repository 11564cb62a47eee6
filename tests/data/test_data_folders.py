"""image_folder and ood_folder: layouts, ordering and the errors for missing or empty folders."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
from PIL import Image

from negprompt.data import LayoutError, image_folder, ood_folder, scan_images


def _jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (3, 3), (5, 6, 7)).save(path, "JPEG")


def test_class_folders_sorted_with_labels(tmp_path):
    for cls in ["zebra", "ant", "mole"]:
        for i in range(3):
            _jpeg(tmp_path / "set" / cls / f"{i}.jpg")
    _jpeg(tmp_path / "set" / "ant" / "nested" / "deep.jpg")
    (tmp_path / "set" / "ant" / "notes.txt").write_text("not an image")
    s = image_folder(tmp_path / "set")
    assert s.name == "set" and s.class_names == ("ant", "mole", "zebra")
    assert s.paths[:4] == ("ant/0.jpg", "ant/1.jpg", "ant/2.jpg", "ant/nested/deep.jpg")
    assert s.labels == (0,) * 4 + (1,) * 3 + (2,) * 3
    assert all(s.abspath(i).is_file() for i in range(len(s)))


def test_class_names_sequence_and_mapping(tmp_path):
    for cls in ["b_folder", "a_folder", "c_folder"]:
        _jpeg(tmp_path / cls / "x.png")
    s = image_folder(tmp_path, class_names=["alpha", "beta", "gamma"])
    assert s.class_names == ("alpha", "beta", "gamma") and s.paths[0].startswith("a_folder/")
    m = image_folder(tmp_path, "mapped", class_names={"c_folder": "C", "a_folder": "A"})
    assert (
        m.class_names == ("C", "A") and m.paths == ("c_folder/x.png", "a_folder/x.png") and m.labels == (0, 1)
    )
    with pytest.raises(ValueError, match="3 class folders but 2"):
        image_folder(tmp_path, class_names=["x", "y"])
    with pytest.raises(LayoutError, match="missing_folder"):
        image_folder(tmp_path, class_names={"missing_folder": "nope"})


def test_flat_folder_is_ood_and_ood_flag_recurses(tmp_path):
    for i in range(4):
        _jpeg(tmp_path / "flat" / f"{i}.JPEG")
    flat = image_folder(tmp_path / "flat")
    assert flat.is_ood and len(flat) == 4 and flat.class_names == ()
    _jpeg(tmp_path / "flat" / "sub" / "x.jpg")
    with pytest.raises(ValueError, match="mixes class sub-folders"):
        image_folder(tmp_path / "flat")
    nested = image_folder(tmp_path / "flat", ood=True)
    assert len(nested) == 5 and "sub/x.jpg" in nested.paths and nested.is_ood


def test_missing_folder_prints_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        image_folder(tmp_path / "nowhere")
    text = str(info.value)
    assert "nowhere" in text and "<class_a>/" in text and "└──" in text


def test_empty_class_folder_is_named(tmp_path):
    _jpeg(tmp_path / "good" / "1.jpg")
    (tmp_path / "empty_cls").mkdir()
    (tmp_path / "empty_cls" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="'empty_cls'"):
        image_folder(tmp_path)


def test_empty_folder(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        image_folder(tmp_path / "e")
    with pytest.raises(ValueError, match="holds no images"):
        image_folder(tmp_path / "e", ood=True)


def test_non_images_are_ignored_and_logged(tmp_path, caplog):
    _jpeg(tmp_path / "c" / "1.jpg")
    (tmp_path / "c" / "labels.csv").write_text("x")
    (tmp_path / "c" / ".hidden.jpg").write_bytes(b"junk")
    with caplog.at_level(logging.DEBUG, logger="negprompt.data.folders"):
        s = image_folder(tmp_path)
    assert s.paths == ("c/1.jpg",)
    assert any("ignored 1 non-image" in r.getMessage() for r in caplog.records)


def test_scan_is_independent_of_creation_order(tmp_path):
    names = [f"{c}/{i}.jpg" for c in "abc" for i in range(5)]
    random.Random(3).shuffle(names)
    for n in names:
        _jpeg(tmp_path / n)
    paths, ignored = scan_images(tmp_path)
    assert paths == sorted(names) and ignored == 0


def test_ood_folder_flat_nested_and_aliases(tmp_path):
    for i in range(3):
        _jpeg(tmp_path / "iNaturalist" / "images" / f"{i}.jpg")
    for cls in ["banded", "zigzagged"]:
        _jpeg(tmp_path / "dtd" / "images" / cls / "a.jpg")
    inat = ood_folder(tmp_path, "inaturalist")
    assert inat.name == "iNaturalist" and len(inat) == 3 and inat.is_ood
    dtd = ood_folder(tmp_path, "Textures")
    assert dtd.name == "dtd" and dtd.paths == ("banded/a.jpg", "zigzagged/a.jpg")
    assert dtd.class_names == ("banded", "zigzagged") and dtd.labels == (0, 1)  # textures kept
    (tmp_path / "dtd" / "images" / "empty_class").mkdir()  # not a usable class layout: unlabelled
    assert ood_folder(tmp_path, "dtd").is_ood and len(ood_folder(tmp_path, "dtd")) == 2
    _jpeg(tmp_path / "Mixed" / "images" / "loose.jpg")
    _jpeg(tmp_path / "Mixed" / "images" / "sub_dir" / "b.jpg")
    mixed = ood_folder(tmp_path, "Mixed")
    assert mixed.is_ood and mixed.paths == ("loose.jpg", "sub_dir/b.jpg")
    _jpeg(tmp_path / "MyOOD" / "images" / "z.png")
    assert len(ood_folder(tmp_path, "MyOOD")) == 1


def test_ood_folder_missing_shows_tree_and_absent_part(tmp_path):
    (tmp_path / "SUN").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        ood_folder(tmp_path, "SUN")
    text = str(info.value)
    assert "has no 'images'" in text
    assert "iNaturalist/" in text and "Places/" in text and "dtd/" in text
    marked = [line for line in text.splitlines() if "<-- missing" in line]
    assert len(marked) == 1 and "images/" in marked[0]
    # The marked "images" line is the one under SUN/, not under another set.
    lines = text.splitlines()
    idx = lines.index(marked[0])
    assert "SUN/" in lines[idx - 1]
