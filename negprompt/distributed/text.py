"""Sharded prompt encoding: each rank encodes some classes; features are gathered with their gradients."""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor

from negprompt.distributed.comm import comm_device, world_size


def shard_classes(lengths: Tensor, world: int) -> list[Tensor]:
    """Split positions ``0 … C−1`` into ``world`` parts balanced by prompt length.

    Positions are sorted by token length and dealt out in turn, so every rank gets the same number
    of prompts (±1) of every length: equal work, and the same length groups on every rank.

    Args:
        lengths: ``[C]`` name-token counts (``ClassNames.lengths[class_idx]``).

    Returns:
        ``world`` sorted int64 index tensors whose union is ``0 … C−1``.
    """
    order = torch.argsort(lengths.cpu(), stable=True)
    return [order[r::world].sort().values for r in range(world)]


class _GatherRows(torch.autograd.Function):
    """Forward: concatenate every rank's rows. Backward: mean of the gradient over ranks, own rows."""

    @staticmethod
    def forward(ctx, local: Tensor, counts: tuple[int, ...], rank: int) -> Tensor:
        ctx.counts, ctx.rank = counts, rank
        dev = comm_device()
        pad = local.new_zeros(max(counts), *local.shape[1:], device=dev)
        pad[: local.shape[0]] = local.detach().to(dev)
        bufs = [torch.empty_like(pad) for _ in counts]
        dist.all_gather(bufs, pad)
        return torch.cat([b[:n] for b, n in zip(bufs, counts)]).to(local.device)

    @staticmethod
    def backward(ctx, grad: Tensor):
        g = grad.detach().to(comm_device()).contiguous().clone()
        dist.all_reduce(g)
        g = (g / len(ctx.counts)).to(grad.device)
        start = sum(ctx.counts[: ctx.rank])
        return g[start : start + ctx.counts[ctx.rank]], None, None


class _SumGrad(torch.autograd.Function):
    """Identity forward; backward sums the gradient over ranks (parameters replicated on all ranks)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        g = grad.detach().to(comm_device()).contiguous().clone()
        dist.all_reduce(g)
        return g.to(grad.device)


class ShardedTextFeatures:
    """A ``TextFeatureFn`` for :func:`negprompt.train.step.train_step` that splits prompts across ranks.

    ``fn(learner, classes, class_idx [C'], kind) -> [C', D]`` (``"pos"``) or ``[C', M, D]`` (``"neg"``),
    the same features as one process computes, on every rank; the contexts' gradients after
    ``backward()`` are those of the single-process loss (see the module docstring). Every rank must
    call it with the same ``class_idx`` and hold identical contexts (:func:`broadcast_parameters`).
    In a single process it encodes everything locally.
    """

    def __init__(self, mode: str = "prefix"):
        self.mode = mode

    def __call__(self, learner, classes, class_idx: Tensor, kind: Literal["pos", "neg"]) -> Tensor:
        if kind not in ("pos", "neg"):
            raise ValueError(f"kind must be 'pos' or 'neg', got {kind!r}")
        class_idx = class_idx.cpu().long()
        world = world_size()
        if world == 1:
            if kind == "pos":
                return learner.positive_features(classes, class_idx, mode=self.mode)
            return learner.negative_features(classes, class_idx, mode=self.mode)
        parts = shard_classes(classes.lengths[class_idx], world)
        rank = dist.get_rank()
        local = self._encode(learner, classes, class_idx[parts[rank]], kind)
        counts = tuple(len(p) for p in parts)
        full = _GatherRows.apply(local, counts, rank)
        order = torch.cat(parts)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        return full[inverse.to(full.device)]

    def _encode(self, learner, classes, idx: Tensor, kind: str) -> Tensor:
        """This rank's features, with the prompts laid out as in ``PromptLearner.{positive,negative}_features``."""
        n, dim = len(idx), learner.encoder.backbone.embed_dim
        if kind == "pos":
            ctx = _SumGrad.apply(learner.pos_ctx)
            shape, prompt_cls = (n, dim), idx
            if learner.config.class_specific:
                prompt_ctx = ctx[idx.to(ctx.device)]
            else:
                prompt_ctx = ctx.unsqueeze(0).expand(n, -1, -1)
        else:
            ctx = _SumGrad.apply(learner.neg_ctx)
            m = ctx.shape[0]
            shape, prompt_cls = (n, m, dim), idx.repeat_interleave(m)
            prompt_ctx = ctx.unsqueeze(0).expand(n, -1, -1, -1).reshape(n * m, *ctx.shape[1:])
        if n == 0:  # keep the context in the graph so that every rank joins the gradient sum
            return ctx.new_zeros(shape, dtype=torch.float32) + 0 * ctx.sum()
        if self.mode == "prefix":  # each distinct context's prefix once (negprompt.prefix)
            if kind == "neg":
                sets, ids = ctx, torch.arange(ctx.shape[0]).repeat(n)
            elif learner.config.class_specific:
                sets, ids = prompt_ctx, torch.arange(n)
            else:
                sets, ids = ctx.unsqueeze(0), torch.zeros(n, dtype=torch.long)
            return learner.encoder.encode_shared(sets, ids, classes, prompt_cls).view(shape)
        return learner.encoder.encode(prompt_ctx, classes, prompt_cls, self.mode).view(shape)
