"""Training uses what it is given: resume checks, mixed precision, feature views, augmentation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder
from negprompt.train import ResumeError, TrainConfig, train_prompts
from negprompt.train.sources import FeatureSource, OnlineSource, encode_image_set
from tests.conftest import unit_features, write_images

NAMES = ["cat", "dog", "red car", "airplane"]
STAGE2 = TrainConfig(stage=2, epochs=2, batch_size=8, lr=0.3, select="last")


@pytest.fixture(scope="module")
def data():
    return unit_features(len(NAMES), 4, seed=3)


def _stage2(backbone, data, folder, *, learner=None, prompt_config=None, resume=False):
    return train_prompts(
        backbone,
        NAMES,
        *data,
        STAGE2,
        learner=learner,
        prompt_config=prompt_config,
        checkpoint_dir=folder,
        resume=resume,
        stop_after_epoch=None if resume else 1,
        progress=False,
    )


def test_resume_with_another_prompt_config_is_refused(tiny_backbone, data, tmp_path):
    _stage2(tiny_backbone, data, tmp_path)
    noisier = PromptConfig(neg_noise=5e-3)  # same shapes: only the check can notice
    with pytest.raises(ResumeError, match=r"prompt config neg_noise: 0\.001 in the checkpoint, 0\.005 now"):
        _stage2(tiny_backbone, data, tmp_path, prompt_config=noisier, resume=True)


def test_stage2_resume_from_other_positive_contexts_is_refused(tiny_backbone, data, tmp_path):
    encoder = TextEncoder(tiny_backbone)
    _stage2(tiny_backbone, data, tmp_path, learner=PromptLearner(encoder))
    moved = PromptLearner(encoder)
    with torch.no_grad():
        moved.pos_ctx.add_(0.01)
    with pytest.raises(ResumeError, match="positive context"):
        _stage2(tiny_backbone, data, tmp_path, learner=moved, resume=True)
    resumed = _stage2(tiny_backbone, data, tmp_path, learner=PromptLearner(encoder), resume=True)
    assert resumed.completed and len(resumed.history) == 2


@pytest.mark.parametrize(
    ("amp", "dtype"), [("bf16", torch.bfloat16), ("none", torch.float32), ("auto", None)]
)
def test_amp_setting_decides_the_text_encoder_precision(tiny_backbone, data, amp, dtype):
    linear = tiny_backbone.text_tower.transformer.resblocks[0].mlp.c_fc
    seen = set()
    hook = linear.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
    try:
        # the module-by-module path, where a forward hook sees each layer's dtype (the shared-prefix
        # path calls the weights functionally; tests/prompts/test_prefix.py checks its bf16 separately)
        cfg = dataclasses.replace(STAGE2, epochs=1, amp=amp, encode_mode="length")
        result = train_prompts(tiny_backbone, NAMES, *data, cfg, progress=False)
    finally:
        hook.remove()
    # stage 2 encodes the frozen positives once in fp32; the learned negatives follow the setting
    assert result.completed and (torch.bfloat16 in seen) == (dtype == torch.bfloat16)


def test_feature_source_draws_every_view(tiny_backbone):
    n, d = 50, 8
    views = torch.stack([torch.full((n, d), float(v)) + torch.arange(n)[:, None] * 10 for v in range(3)])
    source = FeatureSource(list(views), torch.zeros(n, dtype=torch.long), 1, torch.device("cpu"))
    idx = torch.arange(n).flip(0)
    batch = source.batch(idx, torch.Generator().manual_seed(0))
    view = batch[:, 0] - idx * 10  # which view each row came from
    assert set(view.tolist()) == {0.0, 1.0, 2.0}
    torch.testing.assert_close(batch, views[view.long(), idx])
    again = source.batch(idx, torch.Generator().manual_seed(0))
    assert torch.equal(batch, again)


def test_online_source_augments_each_step(tiny_backbone, tmp_path):
    from negprompt.data.folders import image_folder

    for k, name in enumerate(["cat", "dog"]):
        write_images(tmp_path / "img" / name, 3, seed=k, size=40)
    images = image_folder(tmp_path / "img")
    source = OnlineSource(images, tiny_backbone, 2)
    idx = torch.arange(len(source))
    first = source.batch(idx, torch.Generator().manual_seed(1))
    same = source.batch(idx, torch.Generator().manual_seed(1))
    other = source.batch(idx, torch.Generator().manual_seed(2))
    test_view = encode_image_set(tiny_backbone, images)
    assert torch.equal(first, same)  # seeded
    assert (first - other).abs().max() > 1e-3  # another step, another crop or flip
    assert (first - test_view).abs().max() > 1e-3  # the training augmentation, not the test transform
