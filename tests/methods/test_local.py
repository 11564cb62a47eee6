"""Local (patch) features through the hook: the CLS path reproduces encode_image; the value path
equals the last block run with self-only attention, in float64."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from negprompt import local as L
from negprompt.backbone import load_backbone


def _check(model, image_size: int, n: int = 3):
    torch.manual_seed(1)
    images = torch.randn(n, 3, image_size, image_size)
    glob, loc = L.encode_global_local(model, images)
    with torch.no_grad():
        ref_global = F.normalize(model.encode_image(images).float(), dim=-1)
    torch.testing.assert_close(glob, ref_global, atol=1e-6, rtol=0)
    grid = image_size // model.visual.patch_size[0]
    assert loc.shape == (n, grid * grid, ref_global.shape[1])
    torch.testing.assert_close(loc.norm(dim=-1), torch.ones(n, grid * grid))

    # float64 reference: the last block itself, each token allowed to attend only to itself
    seen = {}
    block = L.last_block(model)
    handle = block.register_forward_hook(lambda _m, args, _o: seen.setdefault("x", args[0]))
    with torch.no_grad():
        model.encode_image(images)
    handle.remove()
    x = seen["x"].double()
    tokens = x.shape[1]
    mask = torch.full((tokens, tokens), float("-inf"), dtype=torch.float64).fill_diagonal_(0.0)
    block64, visual64 = copy.deepcopy(block).double(), copy.deepcopy(model.visual).double()
    with torch.no_grad():
        z = block64(x, attn_mask=mask)
        ref_local = F.normalize(visual64.ln_post(z[:, 1:]) @ visual64.proj, dim=-1)
    torch.testing.assert_close(loc.double(), ref_local, atol=2e-5, rtol=0)
    # and not the patch tokens of the ordinary forward (the attention does mix them)
    with torch.no_grad():
        mixed = F.normalize(visual64.ln_post(block64(x)[:, 1:]) @ visual64.proj, dim=-1)
    assert (mixed - ref_local).abs().max() > 1e-3


def test_tiny_model(tiny_backbone):
    _check(tiny_backbone.model, tiny_backbone.image_size)
    # the Backbone wrapper and the bare model give the same result
    images = torch.randn(2, 3, tiny_backbone.image_size, tiny_backbone.image_size)
    a = L.encode_global_local(tiny_backbone, images)
    b = L.encode_global_local(tiny_backbone.model, images)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_vit_b16_random_weights():
    torch.manual_seed(0)
    backbone = load_backbone("ViT-B-16", "none")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check(backbone.model, 224, n=1)
    finally:
        torch.set_num_threads(threads)


def test_unsupported_towers_have_clear_errors(tiny_backbone):
    with pytest.raises(ValueError, match="no ViT image tower"):
        L.encode_global_local(torch.nn.Linear(2, 2), torch.zeros(1, 3, 8, 8))
    model = copy.deepcopy(tiny_backbone.model)
    model.visual.pool_type = "avg"
    with pytest.raises(ValueError, match="CLS token"):
        L.encode_global_local(model, torch.zeros(1, 3, 32, 32))
