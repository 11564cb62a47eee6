"""Prompt contexts use what they are given: class names, context length, tower, precision, init, noise.

Features are compared with open_clip's own ``encode_text`` (``open_clip_features``), the random
initialisation with the values the method fixes (CoOp's N(0, 0.02²) contexts; negatives uniform in
±10⁻³·std around the positive context, docs/findings.md).
"""

from __future__ import annotations

import types
import warnings

import pytest
import torch

import negprompt.prefix as prefix
from negprompt.backbone import TINY_MODEL, load_backbone
from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder
from tests.prompts.test_prompts_reference import NAMES, open_clip_features


def _close(a, b, atol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def test_class_names_are_stripped_and_an_empty_one_is_named(tiny_backbone):
    encoder = TextEncoder(tiny_backbone)
    padded = encoder.class_names(["  goldfish ", "ox"], 4)
    plain = encoder.class_names(["goldfish", "ox"], 4)
    assert padded.names == ["goldfish", "ox"] and len(padded) == 2
    assert torch.equal(padded.lengths, plain.lengths) and torch.equal(padded.suffix, plain.suffix)
    with pytest.raises(ValueError, match=r"^empty class name at position 2$"):
        encoder.class_names(["ox", "cat", "  ", ""], 4)


def test_the_longest_context_leaves_one_name_token(tiny_backbone):
    encoder = TextEncoder(tiny_backbone)
    with pytest.raises(ValueError, match="a context of 75 tokens leaves no room"):
        encoder.class_names(["ox"], 75)
    classes = encoder.class_names(["great white shark", "ox"], 74)  # room for one name token each
    assert classes.lengths.tolist() == [1, 1]
    ctx = torch.randn(2, 74, encoder.width, generator=torch.Generator().manual_seed(0)) * 0.3
    first = tiny_backbone.tokenizer.decode(tiny_backbone.tokenizer.encode("great white shark")[:1]).strip()
    with torch.no_grad():
        for mode in ("prefix", "length", "full"):
            _close(
                encoder.encode(ctx, classes, torch.arange(2), mode),
                open_clip_features(tiny_backbone, ctx, [first, "ox"]),
            )


DROP = object()  # the tower lacks this attribute


def _tower_like(tower, **changes):
    parts = (
        "token_embedding",
        "positional_embedding",
        "transformer",
        "ln_final",
        "text_projection",
        "attn_mask",
    )
    fake = types.SimpleNamespace(**{p: getattr(tower, p) for p in parts}, text_pool_type="argmax")
    for key, value in changes.items():
        if value is DROP:
            delattr(fake, key)
        else:
            setattr(fake, key, value)
    return fake


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({}, None),
        ({"text_pool_type": "eos"}, None),
        ({"text_pool_type": DROP}, None),  # older open_clip: argmax pooling, no attribute
        ({"text_pool_type": "last"}, "not causal with EOT pooling"),
        ({"text_pool_type": "first"}, "not causal with EOT pooling"),
        ({"attn_mask": None}, "not causal with EOT pooling"),
        ({"attn_mask": DROP}, "not causal with EOT pooling"),
        ({"ln_final": DROP}, r"lacks \['ln_final'\]"),
        ({"text_projection": DROP}, r"lacks \['text_projection'\]"),
    ],
)
def test_only_causal_towers_pooled_at_the_eot_token_are_accepted(tiny_backbone, changes, error):
    fake = types.SimpleNamespace(
        text_tower=_tower_like(tiny_backbone.text_tower, **changes),
        name="fake",
        tokenizer=tiny_backbone.tokenizer,
        device=tiny_backbone.device,
    )
    if error is None:
        assert TextEncoder(fake).context_length == 77
    else:
        with pytest.raises(ValueError, match=rf"^fake: .*{error}"):
            TextEncoder(fake)


def test_prefix_mode_shares_each_context_prefix_and_falls_back_exactly(tiny_backbone, monkeypatch):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=3))
    with torch.no_grad():
        learner.pos_ctx.add_(torch.randn(learner.pos_ctx.shape, generator=torch.Generator().manual_seed(1)))
    classes = learner.class_names(NAMES)
    calls = []
    real = prefix.encode_shared
    monkeypatch.setattr(
        prefix, "encode_shared", lambda enc, sets, *a: calls.append(len(sets)) or real(enc, sets, *a)
    )
    with torch.no_grad():
        shared_pos, shared_neg = learner(classes)
        assert calls == [1, 3]  # one positive context, M = 3 negative ones: each prefix run once
        learner.encoder.shared_prefix = False  # a tower the shared-prefix path does not support
        pos, neg = learner(classes)
    assert calls == [1, 3]
    expect = open_clip_features(tiny_backbone, learner.pos_ctx.detach().expand(len(NAMES), -1, -1), NAMES)
    _close(pos, expect)
    _close(shared_pos, expect)
    for m in range(3):
        expect = open_clip_features(
            tiny_backbone, learner.neg_ctx[m].detach().expand(len(NAMES), -1, -1), NAMES
        )
        _close(neg[:, m], expect)
        _close(shared_neg[:, m], expect)


@pytest.mark.parametrize("mode", ["prefix", "length", "pad", "full"])
def test_class_specific_contexts_match_open_clip_in_every_mode(tiny_backbone, mode):
    config = PromptConfig(n_ctx=4, init="", class_specific=True, n_neg=2)
    learner = PromptLearner(TextEncoder(tiny_backbone), config, n_classes=len(NAMES))
    with torch.no_grad():
        learner.pos_ctx.mul_(25)
        classes = learner.class_names(NAMES)
        pos = learner.positive_features(classes, mode=mode)
        some = learner.positive_features(classes, torch.tensor([4, 0, 2]), mode=mode)
        neg = learner.negative_features(classes, torch.tensor([4, 0]), mode=mode)
    ctx = learner.pos_ctx.detach()
    _close(pos, open_clip_features(tiny_backbone, ctx, NAMES))
    _close(some, open_clip_features(tiny_backbone, ctx[[4, 0, 2]], [NAMES[i] for i in (4, 0, 2)]))
    for m in range(2):  # the negatives are shared by all classes, class-specific positives or not
        expect = open_clip_features(
            tiny_backbone, learner.neg_ctx[m].detach().expand(2, -1, -1), [NAMES[4], NAMES[0]]
        )
        _close(neg[:, m], expect)


def test_a_bf16_backbone_encodes_prompts_in_its_own_precision(tiny_backbone):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the random-weights warning
        half = load_backbone(TINY_MODEL, "none", precision="bf16")
    assert half.text_tower.positional_embedding.dtype == torch.bfloat16
    full_learner = PromptLearner(TextEncoder(tiny_backbone))
    half_learner = PromptLearner(TextEncoder(half))
    assert torch.equal(half_learner.pos_ctx, full_learner.pos_ctx.bfloat16().float())
    with torch.no_grad():
        reference = full_learner.positive_features(full_learner.class_names(NAMES), mode="length")
        for mode in ("prefix", "length", "full"):
            feats = half_learner.positive_features(half_learner.class_names(NAMES), mode=mode)
            assert feats.dtype == torch.float32
            _close(feats, reference, atol=0.05)


def test_random_contexts_are_seeded_with_coop_scale(tiny_backbone):
    encoder = TextEncoder(tiny_backbone)
    for config, n_classes in [(PromptConfig(init=""), None), (PromptConfig(init="", class_specific=True), 6)]:
        a, b, other = (PromptLearner(encoder, config, n_classes=n_classes, seed=s).pos_ctx for s in (3, 3, 4))
        assert torch.equal(a, b) and not torch.equal(a, other)
        assert a.shape == ((n_classes,) if n_classes else ()) + (4, 64)
        assert 0.016 < float(a.std()) < 0.024 and abs(float(a.mean())) < 0.005  # N(0, 0.02²)


def _noise_in_std_units(learner):
    base = learner.pos_ctx.mean(0) if learner.config.class_specific else learner.pos_ctx
    return (learner.neg_ctx - base).detach() / float(base.std())


def test_negatives_start_uniform_within_the_noise_around_the_positive(tiny_backbone):
    encoder = TextEncoder(tiny_backbone)
    learner = PromptLearner(encoder)  # the defaults: M = 2, noise 10⁻³ × std of the positive context
    u = _noise_in_std_units(learner) / 1e-3
    assert learner.neg_ctx.shape == (2, 4, 64)
    assert float(u.abs().max()) <= 1 + 1e-3 and float(u.max()) > 0.9 and float(u.min()) < -0.9
    assert abs(float(u.mean())) < 0.1  # uniform in [-1, 1]: centred on the positive context
    learner.init_negatives(noise=0.1, seed=5)
    u = _noise_in_std_units(learner) / 0.1
    assert float(u.abs().max()) <= 1 + 1e-5 and float(u.max()) > 0.9 and float(u.min()) < -0.9
    again = learner.neg_ctx.detach().clone()
    learner.init_negatives(noise=0.1, seed=5)
    assert torch.equal(learner.neg_ctx, again)
    learner.init_negatives(noise=0.1, seed=6)
    assert not torch.equal(learner.neg_ctx, again)
    specific = PromptLearner(encoder, PromptConfig(init="", class_specific=True), n_classes=3)
    u = _noise_in_std_units(specific) / 1e-3  # around the mean of the class contexts
    assert float(u.abs().max()) <= 1 + 1e-3 and float(u.max()) > 0.9


def test_a_linear_text_projection_is_applied_like_the_matrix(tiny_backbone):
    tower = tiny_backbone.text_tower
    linear = torch.nn.Linear(*tower.text_projection.shape, bias=False)
    with torch.no_grad():
        linear.weight.copy_(tower.text_projection.T)
    fake = types.SimpleNamespace(
        text_tower=_tower_like(tower, text_projection=linear),
        name="linear",
        tokenizer=tiny_backbone.tokenizer,
        device=tiny_backbone.device,
        embed_dim=tiny_backbone.embed_dim,
    )
    encoder = TextEncoder(fake)
    classes = encoder.class_names(NAMES, 4)
    ctx = torch.randn(len(NAMES), 4, encoder.width, generator=torch.Generator().manual_seed(4)) * 0.3
    expect = open_clip_features(tiny_backbone, ctx, NAMES)
    with torch.no_grad():
        for mode in ("prefix", "length", "pad", "full"):  # prefix: 5 prompts, each its own context
            _close(encoder.encode(ctx, classes, torch.arange(len(NAMES)), mode), expect)


def test_contexts_of_another_shape_are_refused(tiny_backbone):
    encoder = TextEncoder(tiny_backbone)
    classes = encoder.class_names(NAMES, 4)
    ids = torch.zeros(len(NAMES), dtype=torch.long)
    for shape in [(4, 64), (1, 5, 64), (1, 4, 32)]:
        with pytest.raises(
            ValueError, match=rf"^context shape \({', '.join(map(str, shape))},?\) does not fit \[K, 4, 64\]"
        ):
            encoder.encode_shared(torch.zeros(shape), ids, classes, torch.arange(len(NAMES)))
    learner = PromptLearner(encoder, PromptConfig(n_neg=3))
    tokens = learner.context_tokens(k=2)
    assert [len(v) for v in tokens["positive"]] == [2] * 4
    assert [[len(v) for v in ctx] for ctx in tokens["negative"]] == [[2] * 4] * 3


def test_setting_errors_give_the_numbers_that_do_not_fit(tiny_backbone):
    encoder = TextEncoder(tiny_backbone)
    with pytest.raises(ValueError, match="^the class-name list is empty: give at least one class name$"):
        encoder.class_names([], 4)
    with pytest.raises(
        ValueError, match=r"^init text 'a photo of a' has 4 tokens but n_ctx=3; make them match"
    ):
        PromptLearner(encoder, PromptConfig(n_ctx=3))
    with pytest.raises(ValueError, match="^class-specific contexts need n_classes$"):
        PromptLearner(encoder, PromptConfig(init="", class_specific=True))
    specific = PromptLearner(encoder, PromptConfig(init="", class_specific=True), n_classes=3)
    with pytest.raises(
        ValueError,
        match="^class-specific contexts were learned for 3 classes and cannot be paired with 2 names",
    ):
        specific.class_names(["ox", "cat"])
