import pytest
import torch

from negprompt.backbone import load_backbone
from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder

NAMES = ["tench", "great white shark", "goldfish", "American black bear", "Staffordshire Bull Terrier", "ox"]


def _reference(backbone, texts):
    """open_clip's own full-length encoding of token ids."""
    with torch.no_grad():
        return torch.nn.functional.normalize(
            backbone.model.encode_text(backbone.tokenizer(texts)).float(), dim=-1
        )


@pytest.fixture(scope="module")
def vit_b16():
    torch.manual_seed(0)
    return load_backbone("ViT-B-16", "none")


@pytest.mark.parametrize("which", ["tiny", "vit_b16"])
def test_truncated_encoding_equals_full_length(which, tiny_backbone, request):
    backbone = tiny_backbone if which == "tiny" else request.getfixturevalue("vit_b16")
    learner = PromptLearner(TextEncoder(backbone))
    with torch.no_grad():
        learner.pos_ctx.add_(torch.randn_like(learner.pos_ctx) * 0.05)  # not the init any more
        classes = learner.class_names(NAMES)
        full = learner.positive_features(classes, mode="full")
        for mode in ("length", "pad"):
            torch.testing.assert_close(learner.positive_features(classes, mode=mode), full, atol=1e-5, rtol=0)
        neg_full = learner.negative_features(classes, mode="full")
        torch.testing.assert_close(learner.negative_features(classes), neg_full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("which", ["tiny", "vit_b16"])
def test_init_context_reproduces_open_clip_encode_text(which, tiny_backbone, request):
    backbone = tiny_backbone if which == "tiny" else request.getfixturevalue("vit_b16")
    learner = PromptLearner(TextEncoder(backbone), PromptConfig(init="a photo of a"))
    with torch.no_grad():
        ours = learner.positive_features(learner.class_names(NAMES))
    ref = _reference(backbone, [f"a photo of a {n}" for n in NAMES])
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_gradients_reach_only_the_contexts(tiny_backbone):
    learner = PromptLearner(TextEncoder(tiny_backbone))
    pos, neg = learner(learner.class_names(NAMES))
    (pos.sum() + (neg * torch.linspace(0, 1, neg.shape[-1])).sum()).backward()
    assert learner.pos_ctx.grad is not None and learner.pos_ctx.grad.abs().sum() > 0
    assert learner.neg_ctx.grad is not None and learner.neg_ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_backbone.model.parameters())
    assert {n for n, _ in learner.named_parameters()} == {"pos_ctx", "neg_ctx"}


def test_new_class_names_keep_the_learned_contexts(tiny_backbone):
    encoder = TextEncoder(tiny_backbone)
    learner = PromptLearner(encoder, PromptConfig(n_neg=3))
    with torch.no_grad():
        learner.neg_ctx.add_(torch.randn_like(learner.neg_ctx))
    before = learner.neg_ctx.detach().clone()
    unseen = ["zebra", "espresso machine", "volcano"]
    with torch.no_grad():
        pos, neg = learner(learner.class_names(unseen))
        classes = encoder.class_names(unseen, 4)
        ref = encoder.encode(learner.neg_ctx[1].expand(3, -1, -1), classes, torch.arange(3))
    assert pos.shape == (3, 64) and neg.shape == (3, 3, 64)
    torch.testing.assert_close(neg[:, 1], ref)
    assert torch.equal(learner.neg_ctx, before)


def test_negative_init_makes_distinct_copies_near_the_positive(tiny_backbone):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2, neg_noise=1e-3))
    pos, neg = learner.pos_ctx.detach(), learner.neg_ctx.detach()
    assert not torch.equal(neg[0], neg[1])
    bound = 1e-3 * float(pos.std()) * (1 + 1e-6)
    assert (neg - pos).abs().max() <= bound
    assert (neg[0] - neg[1]).abs().max() > bound / 10


def test_class_specific_contexts(tiny_backbone):
    learner = PromptLearner(
        TextEncoder(tiny_backbone), PromptConfig(n_ctx=16, init="", class_specific=True), n_classes=3
    )
    assert learner.pos_ctx.shape == (3, 16, 64)
    pos = learner.positive_features(learner.class_names(NAMES[:3]))
    assert pos.shape == (3, 64)
    with pytest.raises(ValueError, match="open-vocabulary"):
        learner.class_names(NAMES)


def test_bad_inputs(tiny_backbone):
    encoder = TextEncoder(tiny_backbone)
    with pytest.raises(ValueError, match="empty"):
        encoder.class_names([], 4)
    with pytest.raises(ValueError, match="tokens but n_ctx"):
        PromptLearner(encoder, PromptConfig(n_ctx=3))
    classes = encoder.class_names(NAMES, 4)
    with pytest.raises(ValueError, match="does not fit"):
        encoder.encode(torch.zeros(2, 5, 64), classes, torch.arange(2))
    with pytest.raises(ValueError, match="encode mode"):
        encoder.encode(torch.zeros(2, 4, 64), classes, torch.arange(2), mode="fast")
