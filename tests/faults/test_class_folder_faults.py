"""Odd class folders: names that become one class to the prompts, names the context truncates to one
prompt, a single class, a class folder that links to another. Each is refused before any work with
a message naming the folders, and nothing is written."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from negprompt.cli import main
from negprompt.data import image_folder
from negprompt.data.names import check_class_names, prompt_key
from negprompt.prompts import TextEncoder
from tests.conftest import write_images

TINY = ["--model", "negprompt-tiny", "--pretrained", "none", "--device", "cpu", "--no-neglabel"]
CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")


def _zeroshot(tmp_path: Path, classes: list[str], capsys) -> tuple[int, str, Path]:
    root = tmp_path / "id"
    for k, name in enumerate(classes):
        write_images(root / name, 2, seed=k)
    write_images(tmp_path / "ood", 2, seed=9)
    out = tmp_path / "out"
    code = main(
        ["zeroshot", "--id-dir", str(root), "--ood-dir", str(tmp_path / "ood"), *TINY]
        + ["--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--no-progress"]
    )
    return code, capsys.readouterr().err, out


@pytest.mark.parametrize(
    "classes",
    [["ankle_boot", "ankle boot"], ["Bag", "bag"], [CAFE_NFC, CAFE_NFD], ["bag", "bag "]],
    ids=["underscore", "case", "nfc-nfd", "trailing-space"],
)
def test_class_folders_that_read_the_same_are_refused_naming_them(tmp_path, capsys, classes):
    code, err, out = _zeroshot(tmp_path, [*classes, "shirt"], capsys)
    assert code == 2, err
    assert "become the same class name after normalisation" in err
    assert all(repr(c) in err for c in classes), err
    assert "Traceback" not in err and not out.exists()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npy"))


def test_a_single_class_is_an_error_for_ood_scoring(tmp_path, capsys):
    code, err, out = _zeroshot(tmp_path, ["shirt"], capsys)
    assert code == 2 and "1 class" in err and "at least 2 ID classes" in err
    assert not out.exists()


def test_a_class_folder_linked_to_another_is_refused(tmp_path):
    root = tmp_path / "id"
    write_images(root / "cat", 3)
    write_images(root / "dog", 3, seed=1)
    os.symlink(root / "cat", root / "kitten")
    with pytest.raises(ValueError, match=r"'kitten' .* is a link to class folder 'cat'.*two labels"):
        image_folder(root)


def test_names_the_context_truncates_to_one_prompt_are_named(tiny_backbone):
    encoder = TextEncoder(tiny_backbone)
    room = encoder.context_length - 2 - 4
    stem = " ".join(["word"] * room)
    a, b = f"{stem} alpha", f"{stem} beta"
    with pytest.raises(ValueError, match=r"differ only after the first \d+ tokens") as err:
        encoder.class_names([a, b, "cat"], n_ctx=4)
    assert repr(a) in str(err.value) and repr(b) in str(err.value)
    assert len(encoder.class_names([a, b], n_ctx=4, unique=False)) == 2  # a word bank may repeat


def test_the_prompts_refuse_clashing_names_too(tiny_backbone):
    with pytest.raises(ValueError, match="read the same to the prompts.*'Bag' and 'bag'"):
        TextEncoder(tiny_backbone).class_names(["Bag", "bag", "shirt"], n_ctx=4)


def test_prompt_key_and_check():
    assert prompt_key(" Ankle_boot\t ") == prompt_key("ankle  BOOT") == "ankle boot"
    assert prompt_key(CAFE_NFD) == prompt_key(CAFE_NFC)
    check_class_names(["cat", "dog"])  # distinct names pass
    with pytest.raises(ValueError, match="'x_y' and 'X Y'"):
        check_class_names(["x y", "X Y"], folders=["x_y", "X Y"])
