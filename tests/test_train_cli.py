"""``negprompt train`` end to end on a tiny generated image folder (tiny random CLIP, no network)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from negprompt.cli import main
from negprompt.promptfile import learner_from_file, load_prompts

CLASSES = ["red", "green", "light_blue"]


@pytest.fixture
def folder(tmp_path):
    """Coloured squares: 3 classes x 7 images."""
    root = tmp_path / "images"
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(7):
            colour = [30 + 3 * i] * 3
            colour[k] = 180 + 10 * i
            Image.new("RGB", (20, 20), tuple(colour)).save(root / name / f"{i}.png")
    return root


def args(folder, out, tmp_path, *extra):
    return [
        "train",
        "--train-dir", str(folder),
        "--out", str(out),
        "--model", "negprompt-tiny",
        "--pretrained", "none",
        "--device", "cpu",
        "--shots", "4",
        "--val-per-class", "2",
        "--epochs", "2",
        "--cache-dir", str(tmp_path / "cache"),
        "--no-progress",
        *extra,
    ]  # fmt: skip


def test_train_both_stages_end_to_end(folder, tmp_path, tiny_backbone):
    out = tmp_path / "run"
    assert main(args(folder, out, tmp_path, "--n-views", "2", "--n-neg", "3")) == 0
    for method in ("coop", "negprompt"):
        assert (out / "prompts" / f"{method}.safetensors").is_file()
    assert (out / "checkpoints" / "stage1" / "checkpoint.pt").is_file()
    info = json.loads((out / "train.json").read_text())
    assert info["data"]["class_names"] == ["green", "light blue", "red"]  # sorted folders
    assert (info["data"]["n_train"], info["data"]["n_val"]) == (12, 6)
    assert [s["stage"] for s in info["stages"]] == [1, 2]
    assert all(s["selected"] == "val" and s["completed"] for s in info["stages"])
    assert info["stages"][0]["config"]["n_views"] == 2 and info["backbone"]["random_weights"]
    log = (out / "log.txt").read_text()
    for stage in (1, 2):
        assert log.count(f"stage {stage} epoch ") == 2
    assert "val_acc" in log and "val_loss" in log and " lr " in log

    coop, _ = load_prompts(out / "prompts" / "coop")
    neg, meta = load_prompts(out / "prompts" / "negprompt")
    assert torch.equal(coop["pos_ctx"], neg["pos_ctx"])  # stage 2 kept the stage-1 positives
    assert meta["n_neg"] == 3 and meta["extra"]["stage"] == 2 and meta["class_names"][1] == "light blue"
    learner = learner_from_file(out / "prompts" / "negprompt", tiny_backbone)
    with torch.no_grad():
        _, feats = learner(learner.class_names(["purple", "orange"]))  # open vocabulary
    assert feats.shape == (2, 3, tiny_backbone.embed_dim)

    # an existing run is never overwritten; --resume finds both stages finished
    assert main(args(folder, out, tmp_path)) == 2
    assert main(args(folder, out, tmp_path, "--n-views", "2", "--n-neg", "3", "--resume")) == 0
    again, _ = load_prompts(out / "prompts" / "negprompt")
    assert torch.equal(again["neg_ctx"], neg["neg_ctx"])
    # resuming with other settings names the difference
    assert main(args(folder, out, tmp_path, "--n-views", "2", "--n-neg", "3", "--resume", "--lr", "0.5")) == 2


def test_stage2_from_a_prompts_file(folder, tmp_path, capsys):
    first = tmp_path / "stage1"
    assert main(args(folder, first, tmp_path, "--stage", "1", "--preset", "coop", "--select", "last")) == 0
    assert not (first / "prompts" / "negprompt.json").exists()
    second = tmp_path / "stage2"
    init = first / "prompts" / "coop"
    assert main(args(folder, second, tmp_path, "--stage", "2", "--init-prompts", str(init))) == 0
    a, _ = load_prompts(init)
    b, meta = load_prompts(second / "prompts" / "negprompt")
    assert torch.equal(a["pos_ctx"], b["pos_ctx"]) and not torch.equal(a["neg_ctx"], b["neg_ctx"])
    assert meta["extra"]["config"]["lr"] == 0.1  # negprompt preset
    capsys.readouterr()
    assert main(args(folder, tmp_path / "x", tmp_path, "--stage", "1", "--init-prompts", str(init))) == 2
    assert "--init-prompts" in capsys.readouterr().err
