"""Shared-prefix encoding equals the full 77-token encoding: features and gradients.

Checked on the tiny model and on ViT-B-16 (random weights), for the shared positive context, the M
negative contexts, class-specific contexts (one prefix per class) and a class list never trained on.
"""

from __future__ import annotations

import pytest
import torch

from negprompt import prefix
from negprompt.backbone import load_backbone
from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder

NAMES = ["tench", "great white shark", "goldfish", "American black bear", "Staffordshire Bull Terrier", "ox"]
OTHER = ["golden retriever", "space shuttle", "hay", "bubble", "Granny Smith apple"]


@pytest.fixture(scope="module")
def vit_b16():
    torch.manual_seed(0)
    return load_backbone("ViT-B-16", "none")


def _backbone(which, tiny_backbone, request):
    return tiny_backbone if which == "tiny" else request.getfixturevalue("vit_b16")


def _features_and_grads(learner, classes, mode, kind):
    """Features of ``kind`` and the gradients of a fixed linear functional of them to the contexts."""
    learner.zero_grad(set_to_none=True)
    feats = (
        learner.positive_features(classes, mode=mode)
        if kind == "pos"
        else learner.negative_features(classes, mode=mode)
    )
    weights = torch.linspace(-1, 1, feats.numel()).view_as(feats)
    (feats * weights).sum().backward()
    param = learner.pos_ctx if kind == "pos" else learner.neg_ctx
    return feats.detach(), param.grad.clone()


def _assert_same(learner, classes, kind):
    f_full, g_full = _features_and_grads(learner, classes, "full", kind)
    f_pre, g_pre = _features_and_grads(learner, classes, "prefix", kind)
    torch.testing.assert_close(f_pre, f_full, atol=2e-6, rtol=0)
    scale = float(g_full.abs().max())
    assert scale > 0
    torch.testing.assert_close(g_pre, g_full, atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize("which", ["tiny", "vit_b16"])
@pytest.mark.parametrize("kind", ["pos", "neg"])
def test_shared_prefix_equals_full_length_features_and_gradients(which, kind, tiny_backbone, request):
    backbone = _backbone(which, tiny_backbone, request)
    encoder = TextEncoder(backbone)
    assert encoder.shared_prefix
    learner = PromptLearner(encoder, PromptConfig(n_neg=3, neg_noise=0.5), seed=1)
    with torch.no_grad():
        learner.pos_ctx.add_(torch.randn_like(learner.pos_ctx) * 0.05)
    _assert_same(learner, learner.class_names(NAMES), kind)
    _assert_same(learner, learner.class_names(OTHER), kind)  # open vocabulary: names never seen


@pytest.mark.parametrize("which", ["tiny", "vit_b16"])
def test_shared_prefix_with_class_specific_contexts(which, tiny_backbone, request):
    backbone = _backbone(which, tiny_backbone, request)
    config = PromptConfig(class_specific=True, init="")
    learner = PromptLearner(TextEncoder(backbone), config, n_classes=len(NAMES), seed=2)
    _assert_same(learner, learner.class_names(NAMES), "pos")


def test_subset_of_classes_and_padding_buckets(tiny_backbone):
    """A subset of classes in any order, and suffixes padded to length buckets, change nothing."""
    encoder = TextEncoder(tiny_backbone)
    learner = PromptLearner(encoder, PromptConfig(n_neg=2, neg_noise=0.5))
    classes = learner.class_names(NAMES)
    idx = torch.tensor([4, 0, 3])
    with torch.no_grad():
        ref = learner.negative_features(classes, idx, mode="full")
        for bucket in (1, 3, 8):
            encoder.bucket = bucket
            torch.testing.assert_close(learner.negative_features(classes, idx), ref, atol=2e-6, rtol=0)
    # encode() in mode "prefix": every prompt its own context
    ctx = torch.randn(len(idx), 4, encoder.width) * 0.02
    with torch.no_grad():
        full = encoder.encode(ctx, classes, idx, "full")
        torch.testing.assert_close(encoder.encode(ctx, classes, idx, "prefix"), full, atol=2e-6, rtol=0)


def test_suffix_mask_is_the_bottom_rows_of_the_causal_mask():
    s, t0 = 3, 5
    causal = torch.ones(t0 + s, t0 + s).tril().bool()
    assert torch.equal(prefix.suffix_mask(s, t0, torch.device("cpu")), causal[t0:])
    if prefix.causal_lower_right is not None:  # the object used on CUDA means the same mask
        bias = prefix.causal_lower_right(s, t0 + s)
        assert torch.equal(bias._materialize(torch.device("cpu")), causal[t0:])


def test_plan_groups_cover_every_prompt_once():
    lengths = torch.tensor([1, 3, 2, 3, 7, 1])
    ctx_id = torch.tensor([0, 1, 0, 1, 0, 1])
    cls = torch.arange(6)
    plan = prefix.make_plan(cls, lengths, ctx_id, width=9, bucket=4, device=torch.device("cpu"))
    assert [s for s, *_ in plan.groups] == [4, 8]  # S = length + 1 rounded up to 4
    order = torch.cat([c for _, c, _, _ in plan.groups])
    assert torch.equal(order[plan.inverse], cls)
    assert all(bool((eot < s).all()) for s, _, _, eot in plan.groups)


def test_weights_are_cast_again_after_they_change(tiny_backbone):
    """The cached per-dtype weights follow in-place changes of the tower (e.g. loaded weights)."""
    encoder = TextEncoder(tiny_backbone)
    learner = PromptLearner(encoder)
    classes = learner.class_names(NAMES[:2])
    with torch.no_grad():
        before = learner.positive_features(classes)
        w = tiny_backbone.text_tower.transformer.resblocks[0].mlp.c_fc.weight
        w.mul_(2.0)
        try:
            after = learner.positive_features(classes)
            torch.testing.assert_close(
                after, learner.positive_features(classes, mode="full"), atol=2e-6, rtol=0
            )
        finally:
            w.div_(2.0)
    assert not torch.allclose(before, after)


def test_bf16_autocast_uses_weights_cast_once_and_agrees_with_fp32(tiny_backbone):
    """Under bf16 autocast the frozen weights are cast once (cached), and features stay close to fp32."""
    encoder = TextEncoder(tiny_backbone)
    learner = PromptLearner(encoder, PromptConfig(n_neg=2, neg_noise=0.5))
    classes = learner.class_names(NAMES)
    with torch.no_grad():
        fp32 = learner.negative_features(classes)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = learner.negative_features(classes)
            cached = encoder._weights[(torch.bfloat16, "cpu")][1]
            learner.negative_features(classes)
            assert encoder._weights[(torch.bfloat16, "cpu")][1] is cached  # not cast again
    assert cached[0].qkv[0].dtype == torch.bfloat16 and cached[0].ln1[0].dtype == torch.float32
    assert bf16.dtype == torch.float32
    assert float((bf16 * fp32).sum(-1).min()) > 0.999
