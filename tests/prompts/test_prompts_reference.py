"""Prompt features against open_clip's own text encoding, for any context (not only the init text).

The reference feeds ``[SOS] x…x name [EOT]`` token ids to ``model.encode_text`` and puts the context
vectors in place of the ``x`` embeddings with a forward hook on the token embedding, so the pooling
position, the truncation and the projection are all open_clip's, independent of our encoder.
"""

from __future__ import annotations

import pytest
import torch

from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder

NAMES = ["tench", "great white shark", "goldfish", "American black bear", "ox"]


def open_clip_features(backbone, ctx: torch.Tensor, names: list[str]) -> torch.Tensor:
    """``[P, D]`` open_clip features of ``[SOS] ctx[p] names[p] [EOT]`` for contexts ``ctx [P, L, W]``."""
    tok, tower = backbone.tokenizer, backbone.text_tower
    n_ctx, length = ctx.shape[1], tower.positional_embedding.shape[0]
    filler = tok.encode("x")[0]
    ids = torch.zeros(len(names), length, dtype=torch.long)
    for row, name in enumerate(names):
        seq = [tok.sot_token_id, *[filler] * n_ctx, *tok.encode(name), tok.eot_token_id]
        ids[row, : len(seq)] = torch.tensor(seq)

    def put_context(module, args, out):
        out = out.clone()
        out[:, 1 : 1 + n_ctx] = ctx.to(out.dtype)
        return out

    hook = tower.token_embedding.register_forward_hook(put_context)
    try:
        with torch.no_grad():
            feats = backbone.model.encode_text(ids)
    finally:
        hook.remove()
    return torch.nn.functional.normalize(feats.float(), dim=-1)


@pytest.fixture
def learner(tiny_backbone):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=3))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # contexts far from the init text and from each other
        learner.pos_ctx.add_(torch.randn(learner.pos_ctx.shape, generator=gen) * 0.5)
        learner.neg_ctx.add_(torch.randn(learner.neg_ctx.shape, generator=gen) * 0.5)
    return learner


@pytest.mark.parametrize("mode", ["length", "pad", "full"])
def test_shared_contexts_match_open_clip(tiny_backbone, learner, mode):
    classes = learner.class_names(NAMES)
    with torch.no_grad():
        pos = learner.positive_features(classes, mode=mode)
        neg = learner.negative_features(classes, mode=mode)
    expect_pos = open_clip_features(tiny_backbone, learner.pos_ctx.detach().expand(len(NAMES), -1, -1), NAMES)
    torch.testing.assert_close(pos, expect_pos, atol=1e-5, rtol=0)
    for m in range(3):
        ctx = learner.neg_ctx[m].detach().expand(len(NAMES), -1, -1)
        torch.testing.assert_close(
            neg[:, m], open_clip_features(tiny_backbone, ctx, NAMES), atol=1e-5, rtol=0
        )


def test_negatives_pair_with_unseen_names_through_open_clip(tiny_backbone, learner):
    unseen = ["zebra", "espresso machine", "volcano"]
    before = learner.neg_ctx.detach().clone()
    neg = learner.negative_features(learner.class_names(unseen))  # with gradients, as in training
    neg.sum().backward()
    for m in range(3):
        ctx = before[m].expand(len(unseen), -1, -1)
        torch.testing.assert_close(
            neg[:, m].detach(), open_clip_features(tiny_backbone, ctx, unseen), atol=1e-5, rtol=0
        )
    assert torch.equal(learner.neg_ctx.detach(), before)  # encoding never changes the contexts
    assert learner.neg_ctx.grad is not None and learner.neg_ctx.grad.abs().sum() > 0


def test_class_specific_contexts_each_encode_their_own_class(tiny_backbone):
    config = PromptConfig(n_ctx=4, init="", class_specific=True)
    learner = PromptLearner(TextEncoder(tiny_backbone), config, n_classes=len(NAMES))
    with torch.no_grad():  # clearly different contexts per class
        learner.pos_ctx.mul_(25)
        classes = learner.class_names(NAMES)
        pos = learner.positive_features(classes)
        some = learner.positive_features(classes, torch.tensor([3, 1]))
    torch.testing.assert_close(
        pos, open_clip_features(tiny_backbone, learner.pos_ctx.detach(), NAMES), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(some, pos[[3, 1]], atol=1e-6, rtol=0)


def test_a_subset_of_classes_gets_its_own_features(learner):
    classes = learner.class_names(NAMES)
    idx = torch.tensor([3, 1])
    with torch.no_grad():
        pos, neg = learner(classes)
        torch.testing.assert_close(learner.positive_features(classes, idx), pos[idx], atol=1e-6, rtol=0)
        torch.testing.assert_close(learner.negative_features(classes, idx), neg[idx], atol=1e-6, rtol=0)


def test_the_encode_mode_reaches_the_encoder(learner, monkeypatch):
    seen = []
    real = learner.encoder.encode
    monkeypatch.setattr(learner.encoder, "encode", lambda *a, **k: seen.append(a[3]) or real(*a, **k))
    with torch.no_grad():
        learner(learner.class_names(NAMES), mode="full")
    assert seen == ["full", "full"]


def test_context_tokens_read_a_context_made_of_token_embeddings(tiny_backbone):
    encoder = TextEncoder(tiny_backbone)
    learner = PromptLearner(encoder, PromptConfig(init="a photo of a", n_neg=2))
    with torch.no_grad():
        learner.neg_ctx[1] = encoder.embed("an image of the")
    tokens = learner.context_tokens(k=3)
    assert [[t["token"] for t in vec[:1]] for vec in tokens["positive"]] == [["a"], ["photo"], ["of"], ["a"]]
    assert all(vec[0]["similarity"] == 1.0 and len(vec) == 3 for vec in tokens["positive"])
    assert [vec[0]["token"] for vec in tokens["negative"][1]] == ["an", "image", "of", "the"]
    assert all(
        vec[0]["similarity"] >= vec[1]["similarity"] >= vec[2]["similarity"] for vec in tokens["positive"]
    )
    specific = PromptLearner(encoder, PromptConfig(init="", class_specific=True), n_classes=2)
    with torch.no_grad():
        specific.pos_ctx[0] = encoder.embed("a photo of a") * 2
        specific.pos_ctx[1] = 0
    assert [vec[0]["token"] for vec in specific.context_tokens(k=1)["positive"]] == ["a", "photo", "of", "a"]


def test_a_class_name_longer_than_the_context_is_cut_to_fit(tiny_backbone, learner):
    long_name = " ".join(["tree frog"] * 60)  # 120 tokens: far more than the 77-token context holds
    room = 77 - 2 - learner.config.n_ctx
    cut = tiny_backbone.tokenizer.decode(tiny_backbone.tokenizer.encode(long_name)[:room]).strip()
    with torch.no_grad():
        feats = {
            m: learner.positive_features(learner.class_names([long_name]), mode=m) for m in ("length", "full")
        }
        same = learner.positive_features(learner.class_names([cut]))
    torch.testing.assert_close(feats["length"], feats["full"], atol=1e-5, rtol=0)
    torch.testing.assert_close(feats["length"], same, atol=1e-5, rtol=0)
