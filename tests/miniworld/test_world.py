"""The mini-world: captions state facts, the positive mask, generated images, the contrastive loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from negprompt.miniworld import concepts as C
from negprompt.miniworld import world as W
from negprompt.miniworld.pretrain import (
    PretrainConfig,
    encode_text,
    loss_own_caption,
    loss_with_duplicates,
    lr_at,
    new_model,
)
from negprompt.miniworld.render import draw_shape, draw_texture
from negprompt.miniworld.sources import MiniWorldDataError, digits, fashion_mnist


def test_positive_mask_matches_a_plain_subset_check():
    """Caption j is true of image i exactly when i has every fact j states (checked pair by pair)."""
    dom = W.shapes(60, seed=3)
    vocab = W.fact_vocabulary({"shapes": dom})
    rng = np.random.default_rng(0)
    groups = dom.group
    caps = [dom.captions[g][rng.integers(len(dom.captions[g]))] for g in groups]
    img = np.zeros((len(groups), len(vocab)), bool)
    cap = np.zeros((len(groups), len(vocab)), bool)
    for i, g in enumerate(groups):
        img[i, [vocab[f] for f in dom.facts[g]]] = True
        cap[i, [vocab[f] for f in caps[i].facts]] = True
    mask = W.positives(img, cap)
    expected = np.array(
        [[caps[j].facts <= dom.facts[groups[i]] for j in range(len(groups))] for i in range(len(groups))]
    )
    assert np.array_equal(mask, expected)
    assert mask.diagonal().all()  # every image's own caption is true of it
    assert not mask.all()  # and some captions are false of other images


def test_shape_captions_name_their_attributes_and_facts_agree():
    caps = C.shape_captions("red", "star", "outlined", "small", "gray")
    for c in caps:
        for fact in c.facts:
            value = fact.split("=")[1]
            assert value in c.text, (c.text, fact)
    assert len({c.text for c in caps}) == len(caps)


def test_every_class_has_several_templates_and_synonyms():
    for name in C.CLOTHING:
        texts = {c.text for c in C.clothing_captions(name)}
        assert len(texts) >= 20
        article = "an" if name[0] in "aeiou" else "a"
        assert f"a photo of {article} {name}" in texts  # the toolkit's zero-shot prompt is among them
    assert "a photo of a digit three" in {c.text for c in C.digit_captions(3)}


def test_held_out_combinations_are_never_drawn_for_pretraining():
    dom = W.shapes(400, seed=1, part="pretrain")
    drawn = {tuple(n.split()) for n in (dom.class_names[k] for k in dom.labels)}
    assert drawn and not (drawn & C.HELD_OUT_COMBOS)
    unseen = W.shapes(50, seed=1, part="unseen")
    assert {tuple(n.split()) for n in unseen.class_names} == set(C.HELD_OUT_COMBOS)


def test_generated_images_are_seeded_and_coloured_as_named():
    a = draw_shape("blue", "circle", "filled", "large", "black", np.random.default_rng(5))
    b = draw_shape("blue", "circle", "filled", "large", "black", np.random.default_rng(5))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    fg = a[a.sum(-1) > 150].astype(float).mean(0)  # the shape's pixels on a black background
    assert fg[2] > fg[0] + 60 and fg[2] > fg[1] + 60
    t1 = draw_texture("brick", np.random.default_rng(1), "pretrain")
    t2 = draw_texture("brick", np.random.default_rng(1), "eval")
    assert t1.shape == (32, 32, 3) and not np.array_equal(t1, t2)  # different halves of the photo
    with pytest.raises(ValueError, match="unknown shape"):
        draw_shape("red", "hexagon", "filled", "small", "black", np.random.default_rng(0))


def test_digits_split_is_disjoint_and_complete():
    _, _, a = digits("pretrain")
    _, _, b = digits("held-out")
    assert not set(a) & set(b) and len(a) + len(b) == 1797
    assert abs(len(b) / 1797 - 0.3) < 0.01


def test_missing_fashion_mnist_names_the_folder_and_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("NEGPROMPT_FASHION_MNIST", str(tmp_path / "nowhere"))
    fashion_mnist.cache_clear()
    with pytest.raises(MiniWorldDataError, match=r"nowhere.*apt-get install dataset-fashion-mnist"):
        fashion_mnist("test")
    bad = tmp_path / "bad"
    bad.mkdir()
    import gzip

    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(bad / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03\x00\x00\x00\x05")  # a header promising more than it holds
    monkeypatch.setenv("NEGPROMPT_FASHION_MNIST", str(bad))
    fashion_mnist.cache_clear()
    with pytest.raises(MiniWorldDataError, match="not a complete IDX file"):
        fashion_mnist("test")
    fashion_mnist.cache_clear()


def _reference_loss(img, txt, scale, pos):
    """The loss of the pretraining module docstring, written as plain loops in float64."""
    img, txt, pos = img.double(), txt.double(), pos.bool()
    z = float(scale) * img @ txt.T
    b = z.shape[0]
    i2t = 0.0
    for i in range(b):
        logp = z[i] - torch.logsumexp(z[i], 0)
        i2t -= sum(logp[j] for j in range(b) if pos[i, j]) / int(pos[i].sum())
    t2i = 0.0
    for j in range(b):
        logp = z[:, j] - torch.logsumexp(z[:, j], 0)
        t2i -= sum(logp[i] for i in range(b) if pos[i, j]) / int(pos[:, j].sum())
    return 0.5 * (i2t / b + t2i / b)


def test_contrastive_loss_matches_float64_reference_and_clip_without_duplicates():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(7, 5, generator=g), dim=-1)
    txt = F.normalize(torch.randn(7, 5, generator=g), dim=-1)
    pos = torch.eye(7, dtype=torch.bool)
    pos[0, 3] = pos[3, 0] = pos[0, 0] = pos[3, 3] = True  # images 0 and 3 share a concept
    pos[5, 1] = True  # caption 1 is also true of image 5
    scale = torch.tensor(10.0)
    got = loss_with_duplicates(img, txt, scale, pos)
    assert abs(float(got) - float(_reference_loss(img, txt, scale, pos))) < 1e-5
    eye = torch.eye(7, dtype=torch.bool)
    logits = scale * img @ txt.T
    clip = 0.5 * (F.cross_entropy(logits, torch.arange(7)) + F.cross_entropy(logits.T, torch.arange(7)))
    assert abs(float(loss_with_duplicates(img, txt, scale, eye)) - float(clip)) < 1e-6


def test_duplicate_captions_are_not_pushed_apart():
    """Two images of one concept with one sentence, already aligned: with the mask the loss is at a
    stationary point; with one-hot targets it would push each image away from its twin's caption."""

    def grad(pos):
        txt = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1).requires_grad_(True)
        img = F.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.0, 1.0]]), dim=-1)  # two views of a coat
        loss_with_duplicates(img, txt, torch.tensor(20.0), pos).backward()
        return txt.grad.norm().item()

    pos = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    assert grad(pos) < 1e-6
    assert grad(torch.eye(3, dtype=torch.bool)) > 0.1


def _reference_own_caption(img, txt, scale, pos):
    """Plain float64 loop: each image's target is its own caption; other true pairs leave the softmax."""
    z = scale.double() * img.double() @ txt.double().T
    b = len(img)
    i2t = t2i = 0.0
    for i in range(b):
        keep = [j for j in range(b) if j == i or not pos[i, j]]
        i2t -= z[i, i] - torch.logsumexp(z[i, keep], 0)
        keep = [k for k in range(b) if k == i or not pos[k, i]]
        t2i -= z[i, i] - torch.logsumexp(z[keep, i], 0)
    return 0.5 * (i2t + t2i) / b


def test_own_caption_loss_matches_float64_reference_and_clip_without_duplicates():
    g = torch.Generator().manual_seed(1)
    img = F.normalize(torch.randn(7, 5, generator=g), dim=-1)
    txt = F.normalize(torch.randn(7, 5, generator=g), dim=-1)
    pos = torch.eye(7, dtype=torch.bool)
    pos[0, 3] = pos[3, 0] = True
    pos[5, 1] = pos[2, 1] = True  # caption 1 ("an emoji.") is true of images 1, 2 and 5
    scale = torch.tensor(10.0)
    got = loss_own_caption(img, txt, scale, pos)
    assert abs(float(got) - float(_reference_own_caption(img, txt, scale, pos))) < 1e-5
    eye = torch.eye(7, dtype=torch.bool)
    logits = scale * img @ txt.T
    clip = 0.5 * (F.cross_entropy(logits, torch.arange(7)) + F.cross_entropy(logits.T, torch.arange(7)))
    assert abs(float(loss_own_caption(img, txt, scale, eye)) - float(clip)) < 1e-6
    assert abs(float(got) - float(clip)) > 1e-3  # the mask changes the loss


def test_own_caption_loss_ignores_other_true_captions():
    """Caption 2 is true of image 0 too: moving it in a direction only image 0 sees changes nothing."""
    g = torch.Generator().manual_seed(2)
    img = F.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=-1)
    txt = F.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=-1)
    basis = torch.linalg.qr(img[1:].T, mode="complete").Q[:, 2:]  # orthogonal to images 1 and 2
    direction = basis @ (basis.T @ img[0])  # seen by image 0 only
    assert float(direction @ img[0]) > 1e-3

    def slope(pos):
        t = txt.clone().requires_grad_(True)
        loss_own_caption(img, t, torch.tensor(10.0, dtype=torch.float64), pos).backward()
        return float(t.grad[2] @ direction)

    pos = torch.eye(3, dtype=torch.bool)
    assert abs(slope(pos)) > 1e-3  # a false caption of image 0 is pushed away from it
    pos[0, 2] = True
    assert abs(slope(pos)) < 1e-12  # a true one is left alone


def test_truncated_text_encoding_equals_open_clip():
    import open_clip

    model = new_model(0)
    tokens = open_clip.get_tokenizer("negprompt-mini")(
        ["a photo of a coat", "a small red star on a gray background."]
    )
    length = int((tokens != 0).sum(1).max())
    full = model.encode_text(tokens)
    cut = encode_text(model, tokens[:, :length])
    assert torch.allclose(full, cut, atol=1e-5)


def test_learning_rate_schedule():
    cfg = PretrainConfig(steps=100, warmup=10, lr=1.0, min_lr=0.0)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0) and lr_at(99, cfg) < 0.01
