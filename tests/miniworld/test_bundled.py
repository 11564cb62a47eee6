"""The shipped negprompt-mini weights: they load offline, reach their recorded accuracies, and a
missing or damaged file is an error that names it; the pretraining script runs and resumes."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from negprompt import bundled
from negprompt.backbone import WeightsError, available_tags, load_backbone
from negprompt.miniworld import pretrain as P
from negprompt.miniworld import world as W

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"clothing": 0.80, "digits": 0.85, "shapes": 0.90}
"""Minimum zero-shot top-1 on held-out data."""


def test_card_records_the_file_and_the_targets_are_met():
    card = bundled.read_card()
    path = bundled.weights_path()
    assert path.stat().st_size == card["bytes"] <= 10_000_000
    for name, minimum in TARGETS.items():
        assert card["zero_shot_top1"][name]["top1"] >= minimum, name
    for key in ("recipe", "data", "software", "trained_on"):
        assert card[key]


def test_shipped_weights_reach_the_recorded_accuracies():
    """Re-measure every held-out set with the shipped file; only float error may separate them."""
    torch.set_num_threads(2)
    backbone = load_backbone("negprompt-mini", "auto")
    assert backbone.weights == bundled.MINI_TAG and not backbone.random_weights
    recorded = bundled.read_card()["zero_shot_top1"]
    measured = P.evaluate(backbone.model, W.evaluation_world())
    for name, entry in recorded.items():
        assert measured[name]["images"] == entry["images"], name
        assert abs(measured[name]["top1"] - entry["top1"]) <= 0.002, (name, measured[name], entry)


def test_random_weights_do_not_reach_the_targets():
    """The accuracy check can fail: the same architecture with random weights is near chance."""
    model = P.new_model(0)
    acc = P.zero_shot_accuracy(model, W.shapes(240, seed=W.EVAL_SEED, part="eval"))
    assert acc < 0.3


def test_bundled_tag_is_listed_and_unknown_tags_list_the_valid_ones():
    assert available_tags("negprompt-mini")[0] == bundled.MINI_TAG
    with pytest.raises(WeightsError, match=r"unknown pretrained tag 'v0'.*Valid tags: miniworld-v1"):
        load_backbone("negprompt-mini", "v0")


def _copy_bundle(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "model_weights"
    shutil.copytree(bundled.weights_path().parent, folder)
    monkeypatch.setattr(bundled, "_DIR", folder)
    return folder / bundled.weights_path().name


def test_damaged_or_missing_weights_name_the_file_and_the_fix(tmp_path, monkeypatch):
    weights = _copy_bundle(tmp_path, monkeypatch)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    weights.write_bytes(bytes(data))
    with pytest.raises(
        WeightsError, match=rf"{weights.name} are damaged.*pretrain_mini_clip.py --install --force"
    ):
        load_backbone("negprompt-mini", "miniworld-v1")
    weights.unlink()
    with pytest.raises(WeightsError, match=rf"{weights.name} cannot be read.*reinstalling negprompt"):
        load_backbone("negprompt-mini", "auto")
    (weights.parent / bundled.card_path().name).write_text("{not json")
    with pytest.raises(WeightsError, match="card"):
        load_backbone("negprompt-mini", "auto")


def test_other_weights_still_load_through_the_ordinary_paths(tmp_path):
    model = P.new_model(3)
    path = tmp_path / "mine.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    b = load_backbone("negprompt-mini", str(path))
    assert torch.equal(b.model.visual.conv1.weight, model.visual.conv1.weight)
    r = load_backbone("negprompt-mini", "none")
    assert r.random_weights and r.warning


def _small_world() -> dict[str, W.Domain]:
    from negprompt.data.demo import load_fashion_subset

    sub = load_fashion_subset()
    return {
        "clothing": W.clothing_from(sub["train_images"][:64], sub["train_labels"][:64]),
        "digits": W.handwritten_digits("pretrain"),
        "shapes": W.shapes(64, seed=0),
        "textures": W.textures(30, seed=1),
    }


def test_pretraining_resumes_exactly(tmp_path):
    world = _small_world()
    cfg = P.PretrainConfig(steps=4, batch_size=16, warmup=2, save_every=2, n_shapes=64, n_textures=30)
    straight, s1 = P.pretrain(world, cfg, tmp_path / "a.pt", progress=False)
    P.pretrain(world, cfg, tmp_path / "b.pt", progress=False, stop_after=2)
    resumed, s2 = P.pretrain(world, cfg, tmp_path / "b.pt", progress=False)
    assert s1["steps_done"] == s2["steps_done"] == 4 and s2["steps_this_process"] == 2
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    other = P.PretrainConfig(steps=4, batch_size=16, warmup=2, save_every=2, lr=1e-4)
    with pytest.raises(RuntimeError, match="another recipe"):
        P.pretrain(world, other, tmp_path / "b.pt", progress=False)


def test_pretraining_script_runs_writes_a_card_and_protects_the_shipped_weights(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    import pretrain_mini_clip as script

    small = _small_world()
    monkeypatch.setattr(script.W, "pretraining_world", lambda seed, n_shapes, n_textures: small)
    monkeypatch.setattr(
        script.W, "evaluation_world", lambda: {"shapes": W.shapes(48, seed=W.EVAL_SEED, part="eval")}
    )
    before = bundled.weights_path().read_bytes()
    args = ["--out", str(tmp_path / "run"), "--steps", "3", "--batch-size", "16", "--warmup", "1", "--quiet"]
    assert script.main(args + ["--install"]) == 2  # refuses to replace the shipped weights
    assert bundled.weights_path().read_bytes() == before
    assert script.main(args) == 0
    card = json.loads((tmp_path / "run" / bundled.card_path().name).read_text())
    weights = tmp_path / "run" / bundled.weights_path().name
    assert card["recipe"]["steps"] == 3 and card["trained_on"]["steps_done"] == 3
    assert (
        card["recipe"]["model"] == "negprompt-mini"
        and "every true caption-image pair" in card["recipe"]["loss"]
    )
    with pytest.raises(SystemExit, match="--per-pair only apply to --world v2"):
        script.main(args + ["--per-pair", "4"])
    assert card["sha256"] and card["bytes"] == weights.stat().st_size
    assert 0.0 <= card["zero_shot_top1"]["shapes"]["top1"] <= 1.0
    state = safetensors.torch.load_file(str(weights))
    assert all(v.dtype == torch.float16 for v in state.values())
    assert (tmp_path / "run" / "MODEL_CARD.md").read_text().startswith("# negprompt-mini")
    assert np.isfinite(card["trained_on"]["final_loss_mean_last_50"])
    assert 50 < card["trained_on"]["peak_rss_mb_this_process"] < 64_000
    assert "GB resident" in (tmp_path / "run" / "MODEL_CARD.md").read_text()


def test_model_card_states_its_prompt_recipe_choice_and_caveats_without_placeholders():
    from negprompt import bundled

    text = (bundled.card_path().parent / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "{}" not in text and "None s" not in text and "loss None" not in text
    assert 'prompt "a photo of a <class>"' in text
    assert "## How the recipe was chosen" in text and "held-out evaluation data" in text
    assert "Every OOD concept of the mini presets appears in the pretraining captions" in text
