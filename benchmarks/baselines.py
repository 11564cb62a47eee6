"""The authors' compute patterns for a negative-prompt training step, rebuilt from our building blocks.

- ``faithful``: the official stage-3 step (``--stage 3``, the negative stage the authors' scripts
  run). The frozen image encoder runs every step in fp32 on an augmented batch of 64 images; only
  the C × M negative prompts are encoded, at the full 77 tokens in fp32; the positive features are
  encoded once before training and reused. ``faithful_loops`` also computes L_pd and L_nn with the
  authors' per-class Python loops instead of batched tensor operations.
- ``all_prompts``: the pattern this benchmark used before: all C × (1 + M) prompts, the frozen
  positives included, encoded at 77 tokens in fp32 every step (the official ``forward`` of
  stages 1–2). Kept for comparison with earlier recorded results, not as the headline.

File and line references to the official code are in benchmarks/README.md.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor

PATTERNS = ("faithful", "faithful_loops", "all_prompts")


def augment(images: Tensor, gen: torch.Generator) -> Tensor:
    """The original augmentation on a pixel batch: zero padding 4, random crop back to size, random flip."""
    n, _, h, w = images.shape
    padded = F.pad(images, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (n, 2), generator=gen).tolist()
    flips = torch.rand(n, generator=gen).lt(0.5).tolist()
    out = []
    for x, (dy, dx), flip in zip(padded, offsets, flips, strict=True):
        crop = x[:, dy : dy + h, dx : dx + w]
        out.append(crop.flip(-1) if flip else crop)
    return torch.stack(out)


def loop_pd_nn(pos_text: Tensor, neg_text: Tensor) -> tuple[Tensor, Tensor]:
    """L_pd and L_nn (``negprompt.losses.pd_loss`` / ``nn_loss``) one class at a time, as the authors'
    training loop computes them: two Python loops over the C classes, a few small ops each.

    Args:
        pos_text: ``[C, D]``. neg_text: ``[C, M, D]``.
    """
    n_classes = neg_text.shape[0]
    pd, nn_ = 0.0, 0.0
    for c in range(n_classes):
        neg = neg_text[c] / neg_text[c].norm(dim=-1, keepdim=True)
        nn_ = nn_ - (1 - neg.mean(0).norm())
    for c in range(n_classes):
        pos = pos_text[c : c + 1] / pos_text[c : c + 1].norm(dim=-1, keepdim=True)
        neg = neg_text[c] / neg_text[c].norm(dim=-1, keepdim=True)
        pd = pd - (1 - pos @ neg.T).mean()
    return pd / n_classes, nn_ / n_classes


def build(pattern: str, setup: dict, sync) -> tuple:
    """``(step, extra)`` for one baseline pattern; ``step()`` runs one training step.

    Args:
        setup: what :func:`benchmarks.bench_step.common_setup` returns (backbone, encoder, learner,
            class names, optimizer, config, labels, generator, …).
        sync: ``sync()`` waits for the device (timing the image part).
    """
    from negprompt.losses import stage2_loss

    if pattern not in PATTERNS:
        raise ValueError(f"unknown baseline {pattern!r}; choose one of {PATTERNS}")
    s = setup
    backbone, encoder, learner, cls = s["backbone"], s["encoder"], s["learner"], s["classes"]
    classes, n_neg, device, config = s["n_classes"], s["n_neg"], s["device"], s["config"]
    size = backbone.image_size
    images = torch.randn(s["batch"], 3, size, size, generator=s["gen"]).to(device)
    m = 1 + n_neg if pattern == "all_prompts" else n_neg
    idx = torch.arange(classes).repeat_interleave(m)
    pos_cached = None
    if pattern != "all_prompts":
        with torch.no_grad():  # the official get_ctx_posi: positives encoded once, full length, fp32
            pos_cached = learner.positive_features(cls, mode="full")
    image_times: list[float] = []

    def step():
        s["optimizer"].zero_grad(set_to_none=True)
        start = time.perf_counter()
        with torch.no_grad():
            feats = backbone.encode_images(augment(images, s["gen"]))  # fp32, frozen
        sync()
        image_times.append(time.perf_counter() - start)
        if pattern == "all_prompts":
            ctx = torch.cat([learner.pos_ctx.detach().unsqueeze(0), learner.neg_ctx])  # [1+M, L, W]
        else:
            ctx = learner.neg_ctx
        ctx = ctx.unsqueeze(0).expand(classes, -1, -1, -1).reshape(len(idx), *ctx.shape[1:])
        text = encoder.encode(ctx, cls, idx, "full").view(classes, m, -1)
        pos, neg = (text[:, 0], text[:, 1:]) if pattern == "all_prompts" else (pos_cached, text)
        losses = stage2_loss(
            feats,
            pos,
            neg,
            s["labels"],
            s["logit_scale"],
            w_img=config.w_img,
            w_pd=config.w_pd,
            w_nn=config.w_nn,
        )
        total = losses["total"]
        if pattern == "faithful_loops":
            pd, nn_ = loop_pd_nn(pos, neg)
            total = config.w_img * losses["img"] + config.w_pd * pd + config.w_nn * nn_
        total.backward()
        s["optimizer"].step()
        return float(total.detach())

    groups = [(len(idx), encoder.context_length)]
    return step, {"text_groups": groups, "image_times": image_times}
