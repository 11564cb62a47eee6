"""Portable prompts files: round trip, metadata, backbone check, open-vocabulary pairing."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from negprompt.promptfile import learner_from_file, load_prompts, prompt_paths, save_prompts
from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder

TRAIN_NAMES = ["cat", "dog", "bird"]


@pytest.fixture
def learned(tiny_backbone):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=3), seed=4)
    with torch.no_grad():  # pretend training moved the contexts
        learner.pos_ctx.add_(0.1 * torch.randn_like(learner.pos_ctx))
        learner.neg_ctx.add_(0.1 * torch.randn_like(learner.neg_ctx))
    return learner


def test_round_trip(tiny_backbone, learned, tmp_path):
    files = save_prompts(
        tmp_path / "prompts" / "negprompt", learned, tiny_backbone, TRAIN_NAMES, extra={"stage": 2}
    )
    assert [f.name for f in files] == ["negprompt.safetensors", "negprompt.json"]
    assert not list((tmp_path / "prompts").glob("*.tmp"))
    state, meta = load_prompts(tmp_path / "prompts" / "negprompt.safetensors", tiny_backbone)
    assert torch.equal(state["pos_ctx"], learned.pos_ctx.detach())
    assert torch.equal(state["neg_ctx"], learned.neg_ctx.detach())
    assert meta["backbone"]["name"] == tiny_backbone.name and meta["backbone"]["weights"] == "random"
    assert (meta["n_ctx"], meta["n_neg"], meta["class_specific"], meta["init"]) == (
        4,
        3,
        False,
        "a photo of a",
    )
    assert meta["class_names"] == TRAIN_NAMES and meta["extra"] == {"stage": 2} and meta["format"] == 1
    assert "negprompt" in meta

    restored = learner_from_file(tmp_path / "prompts" / "negprompt", tiny_backbone)
    classes = restored.class_names(TRAIN_NAMES)
    with torch.no_grad():
        a_pos, a_neg = learned(learned.class_names(TRAIN_NAMES))
        b_pos, b_neg = restored(classes)
    assert torch.equal(a_pos, b_pos) and torch.equal(a_neg, b_neg)
    assert restored.config.n_neg == 3 and restored.config.init == "a photo of a"


def test_open_vocabulary_pairing(tiny_backbone, learned, tmp_path):
    save_prompts(tmp_path / "p", learned, tiny_backbone, TRAIN_NAMES)
    restored = learner_from_file(tmp_path / "p", tiny_backbone)
    new_names = ["red car", "tree frog", "airplane", "house", "cat"]
    with torch.no_grad():
        pos, neg = restored(restored.class_names(new_names))
        # the same contexts encoded directly with the original learner on the new names
        ref_pos, ref_neg = learned(learned.class_names(new_names))
    assert pos.shape == (5, tiny_backbone.embed_dim) and neg.shape == (5, 3, tiny_backbone.embed_dim)
    assert torch.equal(pos, ref_pos) and torch.equal(neg, ref_neg)


def test_other_backbone_is_refused_naming_both(tiny_backbone, learned, tmp_path):
    save_prompts(tmp_path / "p", learned, tiny_backbone, TRAIN_NAMES)
    other = dataclasses.replace(tiny_backbone, name="ViT-B-16", weights="openai")
    with pytest.raises(
        ValueError, match=r"negprompt-tiny with weights 'random'.*ViT-B-16 with weights 'openai'"
    ):
        learner_from_file(tmp_path / "p", other)
    # reading without a backbone works (e.g. to inspect the metadata)
    _, meta = load_prompts(tmp_path / "p")
    assert meta["backbone"]["name"] == "negprompt-tiny"


def test_width_mismatch_is_refused(tiny_backbone, learned, tmp_path):
    save_prompts(tmp_path / "p", learned, tiny_backbone, TRAIN_NAMES)
    from safetensors.torch import save_file

    tensors, _ = prompt_paths(tmp_path / "p")
    save_file({"pos_ctx": torch.zeros(4, 32), "neg_ctx": torch.zeros(3, 4, 32)}, str(tensors))
    with pytest.raises(ValueError, match="context width 32.*width 64"):
        learner_from_file(tmp_path / "p", tiny_backbone)


def test_missing_file_and_bad_format(tiny_backbone, learned, tmp_path):
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_prompts(tmp_path / "absent")
    _, meta_path = save_prompts(tmp_path / "p", learned, tiny_backbone, TRAIN_NAMES)
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(ValueError, match="format 99"):
        load_prompts(tmp_path / "p")


def test_class_specific_contexts_round_trip(tiny_backbone, tmp_path):
    learner = PromptLearner(
        TextEncoder(tiny_backbone), PromptConfig(n_ctx=6, class_specific=True, n_neg=2), n_classes=3
    )
    save_prompts(tmp_path / "cs", learner, tiny_backbone, TRAIN_NAMES)
    restored = learner_from_file(tmp_path / "cs", tiny_backbone)
    assert restored.config.class_specific and restored.pos_ctx.shape == (3, 6, 64)
    assert torch.equal(restored.pos_ctx, learner.pos_ctx.detach())
    with pytest.raises(ValueError, match="open-vocabulary"):
        restored.class_names(["a", "b"])
