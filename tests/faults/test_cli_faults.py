"""Fault injection on the command line and the files it writes: prompt files, outputs, temp files,
odd images, symlinks and the messages a user reads."""

from __future__ import annotations

import errno
import io
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from negprompt.cli import main
from negprompt.data import image_folder, scan_images
from negprompt.promptfile import load_prompts, save_prompts
from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder
from negprompt.synthetic import synthetic_run
from negprompt.train.checkpoint import save_checkpoint
from negprompt.viz import thumbnail_png
from tests.conftest import write_images

TINY = ["--model", "negprompt-tiny", "--pretrained", "none", "--device", "cpu", "--no-neglabel"]


@pytest.fixture
def prompts(tiny_backbone, tmp_path) -> Path:
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2))
    tensors, _ = save_prompts(tmp_path / "p" / "negprompt", learner, tiny_backbone, ["a", "b"])
    return tensors


# --------------------------------------------------------------------------- prompt files


def test_a_truncated_prompt_file_is_a_clear_error_naming_it(prompts):
    data = prompts.read_bytes()
    prompts.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"prompts file {prompts} is damaged"):
        load_prompts(prompts)


def test_a_flipped_byte_in_a_prompt_file_is_detected(prompts):
    data = bytearray(prompts.read_bytes())
    data[-3] ^= 0x10  # inside the last tensor's bytes
    prompts.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="do not match the checksum"):
        load_prompts(prompts)


def test_broken_prompt_metadata_names_the_file(prompts):
    meta = prompts.with_suffix(".json")
    meta.write_text('{"format": 1, ')
    with pytest.raises(ValueError, match=str(meta)):
        load_prompts(prompts)


# --------------------------------------------------------------------------- outputs: modes, temp files


def _learner(backbone) -> PromptLearner:
    return PromptLearner(TextEncoder(backbone), PromptConfig(n_neg=2))


def test_outputs_respect_the_umask(tiny_backbone, tmp_path):
    old = os.umask(0o022)
    try:
        checkpoint = save_checkpoint(tmp_path / "ck", {"epoch": 1})
        tensors, meta = save_prompts(tmp_path / "q" / "coop", _learner(tiny_backbone), tiny_backbone, ["a"])
    finally:
        os.umask(old)
    for path in (checkpoint, tensors, meta):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def _host() -> str:
    """This host's tag in temporary names (`negprompt.io.temp_name`)."""
    from negprompt.io import temp_name

    return temp_name("x").name.split("@")[1][:6]


def _old(path: Path) -> Path:
    past = time.time() - 3 * 24 * 3600
    os.utime(path, (past, past))
    return path


def test_stale_temporary_files_are_removed_on_the_next_write(tiny_backbone, prompts, tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    legacy = folder / ".checkpoint-abcd1234.tmp"  # an older version's mkstemp name
    legacy.write_bytes(b"x" * 10)
    _old(legacy)
    dead = folder / f".checkpoint.pt.tmp-999999999@{_host()}-00ff"
    dead.write_bytes(b"y")
    fresh = folder / ".checkpoint-wxyz9876.tmp"  # recent and of unknown owner: kept
    fresh.write_bytes(b"z")
    save_checkpoint(folder, {"epoch": 1})
    assert not legacy.exists() and not dead.exists() and fresh.exists()

    stale_prompt = prompts.parent / ".negprompt.safetensors-q1w2e3r4.tmp"
    stale_prompt.write_bytes(b"half")
    _old(stale_prompt)
    save_prompts(prompts.with_suffix(""), _learner(tiny_backbone), tiny_backbone, ["a", "b"])
    assert not stale_prompt.exists()


def test_a_killed_run_writers_temp_folder_is_removed(tmp_path):
    runs = tmp_path / "runs"
    leftover = runs / f".demo.tmp-999999999@{_host()}-1234abcd"
    (leftover / "sub").mkdir(parents=True)
    synthetic_run(runs / "demo", n_id=6, ood_sets={"far": 3})
    assert not leftover.exists() and (runs / "demo").is_dir()


# --------------------------------------------------------------------------- negprompt train --out


def _train_args(folder: Path, out: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "train", "--train-dir", str(folder), "--out", str(out), *TINY, "--shots", "2",
        "--val-per-class", "1", "--epochs", "1", "--stage", "1",
        "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra,
    ]  # fmt: skip


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "train"
    for k in range(2):
        write_images(root / f"c{k}", 4, seed=k)
    return root


def test_train_refuses_a_finished_run_directory(folder, tmp_path, capsys):
    run_dir = synthetic_run(tmp_path / "runs" / "finished", n_id=6, ood_sets={"far": 3})
    before = sorted(p.name for p in run_dir.iterdir())
    log = (run_dir / "log.txt").read_text()
    assert main(_train_args(folder, run_dir, tmp_path)) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == before and (run_dir / "log.txt").read_text() == log


def test_a_second_training_run_never_replaces_the_first(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_train_args(folder, out, tmp_path)) == 0
    first = (out / "config.json").read_text()
    assert main(_train_args(folder, out, tmp_path, "--lr", "0.01")) == 2
    assert "already exists" in capsys.readouterr().err and (out / "config.json").read_text() == first
    assert main(_train_args(folder, out, tmp_path, "--lr", "0.01", "--unique")) == 0
    assert '"lr": 0.01' in (tmp_path / "out-2" / "config.json").read_text()
    assert (out / "config.json").read_text() == first


# --------------------------------------------------------------------------- OS errors in the CLI


def test_an_unwritable_output_fails_in_one_line_before_any_work(image_tree, tmp_path, capsys, monkeypatch):
    import negprompt.features as features

    def never(*args, **kwargs):
        raise AssertionError("features were computed although the output cannot be written")

    monkeypatch.setattr(features, "extract_features", never)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = ["zeroshot", "--id-dir", str(image_tree / "id"), "--ood-dir", str(image_tree / "ood"), *TINY]
    assert main([*argv, "--cache-dir", str(tmp_path / "c"), "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(blocker) in err and "Traceback" not in err


@pytest.mark.parametrize(
    "code, fix",
    [
        (errno.EACCES, "permissions"),
        (errno.EROFS, "read-only"),
        (errno.ENOSPC, "disk is full"),
        (errno.ELOOP, "link"),
    ],
)
def test_os_errors_become_one_line_with_path_and_fix(code, fix, tmp_path, capsys, monkeypatch):
    import negprompt.commands.zeroshot as zeroshot

    def fail(args):
        raise OSError(code, os.strerror(code), str(tmp_path / "somewhere"))

    monkeypatch.setattr(zeroshot, "run", fail)  # the parser is built at each call of main
    assert main(["zeroshot", "--id-dir", "x", "--ood-dir", "y"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "somewhere") in err and fix in err
    from negprompt.io import os_error_message

    assert fix in os_error_message(OSError(code, os.strerror(code), "p"))


# --------------------------------------------------------------------------- images and folders


def test_sixteen_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(grey16)
    pixels = np.asarray(Image.open(io.BytesIO(thumbnail_png(grey16, None))))
    assert abs(int(pixels[0, 0, 0]) - 128) <= 1  # not 255
    half = tmp_path / "half.tiff"
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(half)
    pixels = np.asarray(Image.open(io.BytesIO(thumbnail_png(half, None))))
    assert abs(int(pixels[0, 0, 0]) - 128) <= 1  # not 0
    wild = tmp_path / "wild.tiff"
    Image.fromarray(np.full((8, 8), 900.0, np.float32)).save(wild)
    with pytest.raises(ValueError, match="outside"):
        thumbnail_png(wild, None)


def test_a_symlink_loop_in_an_image_folder_lists_each_image_once(tmp_path, caplog):
    root = tmp_path / "ood"
    write_images(root / "sub", 3)
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "again").symlink_to(root / "sub", target_is_directory=True)
    paths, _ = scan_images(root)
    assert len(paths) == 3 and all(p.count("/") <= 1 for p in paths)
    assert "symlink loop" in caplog.text
    classes = tmp_path / "classes"
    write_images(classes / "a", 2, seed=1)
    write_images(classes / "b", 3, seed=2)
    (classes / "a" / "up").symlink_to(classes, target_is_directory=True)
    (classes / "a" / "other").symlink_to(classes / "b", target_is_directory=True)
    listed = image_folder(classes)
    assert sorted(listed.labels) == [0, 0, 1, 1, 1]  # class b's images once, under b


def test_messages_that_used_to_mislead(image_tree, tmp_path, capsys):
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("")
    with pytest.raises(OSError, match="is a file, not a folder"):
        image_folder(a_file)
    root = tmp_path / "linked"
    write_images(root / "c", 2)
    (root / "c" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    images = image_folder(root)
    with pytest.raises(FileNotFoundError, match="broken symbolic link"):
        images.fingerprint()
    mixed = tmp_path / "mixed"
    write_images(mixed / "c", 2)
    write_images(mixed, 1)
    with pytest.raises(ValueError, match="--ood-dir"):
        image_folder(mixed)
    assert main(["app", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["zeroshot", "--id-dir", str(image_tree / "id"), "--ood-dir", str(image_tree / "ood"),
                 "--model", "ViT-B-61", "--pretrained", "none", "--cache-dir", str(tmp_path / "c"),
                 "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "did you mean ViT-B-16" in err and len(err) < 400


def test_an_interrupt_is_reported_once(folder, tmp_path, capsys, monkeypatch):
    import negprompt.experiments.experiment as experiment

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "extract_all", interrupt)
    assert main(_train_args(folder, tmp_path / "out", tmp_path)) == 130
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert text.count("interrupted") == 1 and "--resume" in text


def test_offline_weights_say_what_to_fetch_and_where_it_goes(monkeypatch):
    import negprompt.backbone as backbone
    import negprompt.weights as weights

    monkeypatch.setattr(weights, "network_available", lambda timeout=3.0: False)
    monkeypatch.setattr(weights, "_cached_file", lambda cfg, weights_dir: None)
    with pytest.raises(backbone.WeightsError) as info:
        backbone.load_backbone("ViT-B-16", "openai")
    text = str(info.value)
    assert "huggingface.co/" in text and "--pretrained PATH" in text and "open_clip" in text
