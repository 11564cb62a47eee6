"""Options checked before any work: a device the machine lacks, a device that is no device, an output
folder the file system refuses, a stage setting of the wrong type, and unreadable images grouped by
reason. Each gives one line without a traceback and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from negprompt.cli import main
from negprompt.data import image_folder
from negprompt.features import extract_features
from tests.conftest import write_images

TINY = ["--model", "negprompt-tiny", "--pretrained", "none", "--no-neglabel", "--no-progress"]


@pytest.fixture
def tree(tmp_path) -> Path:
    for k, name in enumerate(["cat", "dog"]):
        write_images(tmp_path / "id" / name, 3, seed=k)
    write_images(tmp_path / "ood", 3, seed=9)
    return tmp_path


def _run(tree: Path, capsys, *extra: str, command: str = "zeroshot") -> tuple[int, str]:
    data = ["--id-dir", str(tree / "id"), "--ood-dir", str(tree / "ood")]
    if command == "train":
        data = [
            "--train-dir",
            str(tree / "id"),
            *data,
            "--shots",
            "2",
            "--val-per-class",
            "0",
            "--select",
            "last",
        ]
    out = [] if "--out" in extra else ["--out", str(tree / "out")]
    code = main([command, *data, *TINY, "--cache-dir", str(tree / "cache"), *out, *extra])
    return code, capsys.readouterr().err


def _nothing_written(tree: Path) -> bool:
    return not (tree / "out").exists() and not (tree / "cache").exists()


def test_cuda_without_a_gpu_is_one_clear_line(tree, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = _run(tree, capsys, "--device", "cuda")
    assert code == 2 and "no CUDA device here" in err and "--device cpu" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and _nothing_written(tree)


def test_a_cuda_index_beyond_the_gpus_is_named(tree, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    code, err = _run(tree, capsys, "--device", "cuda:5")
    assert code == 2 and "has 2 CUDA device(s), cuda:0 to cuda:1" in err and _nothing_written(tree)


def test_a_device_that_is_no_device_is_named(tree, capsys):
    code, err = _run(tree, capsys, "--device", "tpu9")
    assert code == 2 and "'tpu9' is not a device name" in err and "Traceback" not in err
    assert _nothing_written(tree)


def test_an_output_under_proc_names_the_real_cause(tree, capsys):
    if not Path("/proc").is_dir():
        pytest.skip("needs a /proc file system (Linux)")
    code, err = _run(tree, capsys, "--device", "cpu", "--out", "/proc/negprompt-out")
    assert code == 2 and "/proc" in err and "refuses new files" in err and "No such file" not in err


def test_a_stage_setting_of_the_wrong_type_names_the_option(tree, capsys):
    code, err = _run(tree, capsys, "--device", "cpu", "--stage1", "epochs=abc", command="train")
    assert code == 2 and "--stage1 epochs='abc': epochs must be int" in err and _nothing_written(tree)


def test_unreadable_images_are_grouped_by_reason(tiny_backbone, tmp_path):
    root = tmp_path / "imgs"
    write_images(root, 20, seed=3)
    files = sorted(root.iterdir())
    files[0].write_bytes(b"not an image at all")
    files[1].write_bytes(b"also not an image")
    files[2].write_bytes(files[3].read_bytes()[:60])  # a truncated PNG
    files[4].chmod(0)
    images = image_folder(root, ood=True)
    with pytest.raises(ValueError) as err:
        extract_features(tiny_backbone, images, cache_dir=tmp_path / "cache", progress=False)
    files[4].chmod(0o644)
    message = str(err.value)
    root_reads_all = os.geteuid() == 0
    assert f"{3 if root_reads_all else 4} of 20 images" in message and "by reason" in message
    assert "not an image format PIL can decode: 2" in message
    assert "truncated or damaged image data: 1" in message or "decode: 3" in message
    assert root_reads_all or "no permission to read it: 1" in message


def test_a_huge_n_neg_is_refused_with_its_estimate_before_training(tree, capsys, monkeypatch):
    import negprompt.train.loop as loop
    import negprompt.train.memory as memory

    def never(*args, **kwargs):
        raise AssertionError("training started although the estimate does not fit")

    monkeypatch.setattr(memory, "free_bytes", lambda device: 1 << 30)  # 1 GiB free
    monkeypatch.setattr(loop, "_Trainer", never)
    code, err = _run(tree, capsys, "--device", "cpu", "--n-neg", "100000", command="train")
    assert code == 2, err
    assert "--n-neg 100000: stage 2 would need about" in err and "1.0 GiB are free" in err
    assert "use --n-neg" in err and not (tree / "out").exists()
