"""Exact prompt encoding with shared prefixes: each context's ``[SOS] + context`` states computed once.

CLIP's text transformer is causal: the hidden state of token t depends only on tokens 0 … t. In a
prompt ``[SOS] v_1 … v_L [name] [EOT]`` the first ``T0 = 1 + L`` tokens are the same for every class
that uses the same context, so their states (and the attention keys and values they give in every
layer) do not depend on the class name. This module runs each of the K context sets' prefixes
once (``[K, T0, W]``) and then only the name + EOT tokens of the P prompts (``[P, S, W]``) against
the cached prefix keys and values, with the lower-right causal mask

    query i (of S) sees key j (of T0 + S)  ⇔  j ≤ T0 + i,

which is exactly the rows ``T0 … T0+S−1`` of the full causal mask. The result equals the full
77-token encoding up to float rounding, features and gradients alike. Tokens run per step fall from
``P·(T0 + S)`` to ``K·T0 + P·S`` (at C = 100, M = 2, L = 4: 59 % of the tokens are prefix).

Precision: under CUDA autocast (bf16) the frozen weights are cast once and cached, the residual
stream stays fp32 and layer norms run in fp32, as autocast would do, without re-casting every
weight in every call. Only the standard open_clip residual block (``nn.MultiheadAttention``,
pre-norm, optional LayerScale) is supported; :func:`supports` says whether a tower qualifies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

try:  # lower-right causal mask object: flash / memory-efficient kernels on CUDA
    from torch.nn.attention.bias import causal_lower_right
except ImportError:  # pragma: no cover - older torch
    causal_lower_right = None


@dataclass(frozen=True)
class LayerWeights:
    """One residual block's weights in the compute dtype (layer norms kept in fp32)."""

    ln1: tuple[Tensor, Tensor, float]
    qkv: tuple[Tensor, Tensor | None]
    out: tuple[Tensor, Tensor | None]
    ln2: tuple[Tensor, Tensor, float]
    fc: tuple[Tensor, Tensor | None]
    proj: tuple[Tensor, Tensor | None]
    act: nn.Module
    gamma1: Tensor | None
    gamma2: Tensor | None
    heads: int


def supports(tower: nn.Module) -> bool:
    """Whether ``tower.transformer`` is made of standard pre-norm blocks this module can run."""
    transformer = getattr(tower, "transformer", None)
    if transformer is None or not getattr(transformer, "batch_first", True):
        return False
    for blk in getattr(transformer, "resblocks", []):
        attn = getattr(blk, "attn", None)
        if not isinstance(attn, nn.MultiheadAttention) or not attn._qkv_same_embed_dim:
            return False
        if hasattr(blk, "ln_1_kv") or not all(hasattr(blk, a) for a in ("ln_1", "ln_2", "mlp")):
            return False
        if not all(hasattr(blk.mlp, a) for a in ("c_fc", "gelu", "c_proj")):
            return False
    return len(getattr(transformer, "resblocks", [])) > 0


def layer_weights(tower: nn.Module, dtype: torch.dtype) -> list[LayerWeights]:
    """The blocks' weights, cast once to ``dtype`` (the fp32 parameters themselves when fp32)."""

    def lin(m: nn.Module, w: str = "weight", b: str = "bias") -> tuple[Tensor, Tensor | None]:
        bias = getattr(m, b)
        return (
            getattr(m, w).detach().to(dtype),
            None if bias is None else bias.detach().to(dtype),
        )

    def norm(m: nn.Module) -> tuple[Tensor, Tensor, float]:
        return m.weight.detach().float(), m.bias.detach().float(), float(m.eps)

    def gamma(m: nn.Module) -> Tensor | None:
        g = getattr(m, "gamma", None)
        return None if g is None else g.detach().float()

    return [
        LayerWeights(
            ln1=norm(blk.ln_1),
            qkv=lin(blk.attn, "in_proj_weight", "in_proj_bias"),
            out=lin(blk.attn.out_proj),
            ln2=norm(blk.ln_2),
            fc=lin(blk.mlp.c_fc),
            proj=lin(blk.mlp.c_proj),
            act=blk.mlp.gelu,
            gamma1=gamma(getattr(blk, "ls_1", None)),
            gamma2=gamma(getattr(blk, "ls_2", None)),
            heads=blk.attn.num_heads,
        )
        for blk in tower.transformer.resblocks
    ]


def _ln(x: Tensor, w: tuple[Tensor, Tensor, float]) -> Tensor:
    return F.layer_norm(x.float(), (x.shape[-1],), w[0], w[1], w[2])


def _scaled(y: Tensor, gamma: Tensor | None) -> Tensor:
    return y if gamma is None else y * gamma


def _heads(t: Tensor, heads: int) -> Tensor:
    """``[N, T, W] -> [N, H, T, W/H]``."""
    n, t_len, w = t.shape
    return t.view(n, t_len, heads, w // heads).transpose(1, 2)


def _merge(t: Tensor) -> Tensor:
    """``[N, H, T, d] -> [N, T, H·d]``."""
    n, h, t_len, d = t.shape
    return t.transpose(1, 2).reshape(n, t_len, h * d)


def _block(x: Tensor, lw: LayerWeights, dtype: torch.dtype, attend) -> Tensor:
    """One pre-norm block on the fp32 residual stream ``x`` ``[N, T, W]``; ``attend(q, k, v)``."""
    qkv = F.linear(_ln(x, lw.ln1).to(dtype), *lw.qkv)
    q, k, v = (_heads(t, lw.heads) for t in qkv.chunk(3, dim=-1))
    x = x + _scaled(F.linear(_merge(attend(q, k, v)), *lw.out).float(), lw.gamma1)
    h = lw.act(F.linear(_ln(x, lw.ln2).to(dtype), *lw.fc))
    return x + _scaled(F.linear(h, *lw.proj).float(), lw.gamma2)


def run_prefixes(x: Tensor, layers: list[LayerWeights], dtype: torch.dtype) -> list[tuple[Tensor, Tensor]]:
    """Run the K prefixes ``x`` ``[K, T0, W]`` (positions added) and return each layer's keys and
    values ``([K, H, T0, d], [K, H, T0, d])``. The last layer's MLP is skipped (nothing reads it)."""
    cache: list[tuple[Tensor, Tensor]] = []

    def attend(q, k, v):
        cache.append((k, v))
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    for i, lw in enumerate(layers):
        if i == len(layers) - 1:
            qkv = F.linear(_ln(x, lw.ln1).to(dtype), *lw.qkv)
            _, k, v = (_heads(t, lw.heads) for t in qkv.chunk(3, dim=-1))
            cache.append((k, v))
        else:
            x = _block(x, lw, dtype, attend)
    return cache


_MASKS: dict[tuple, Tensor] = {}


def suffix_mask(s: int, t0: int, device: torch.device):
    """Attention mask of S suffix queries over ``T0 + S`` keys: key j visible to query i iff j ≤ T0 + i.

    On CUDA the lower-right causal bias object (no mask tensor, fused kernels); elsewhere a cached
    boolean ``[S, T0 + S]`` mask.
    """
    if causal_lower_right is not None and device.type == "cuda":  # lets SDPA pick a fused kernel
        try:
            return causal_lower_right(s, t0 + s)
        except RuntimeError:  # e.g. under a dispatch mode (FLOP counter): the explicit mask below
            pass
    key = (s, t0, str(device))
    if key not in _MASKS:
        i = torch.arange(s, device=device).unsqueeze(1)
        _MASKS[key] = torch.arange(t0 + s, device=device).unsqueeze(0) <= t0 + i
    return _MASKS[key]


def run_suffixes(
    x: Tensor,
    prefix_kv: list[tuple[Tensor, Tensor]],
    ctx_id: Tensor,
    layers: list[LayerWeights],
    dtype: torch.dtype,
) -> Tensor:
    """Run P suffixes ``x`` ``[P, S, W]`` (positions added) against their prefixes' keys and values.

    Args:
        ctx_id: ``[P]`` (on ``x``'s device) index into the K prefixes of each suffix.

    Returns:
        ``[P, S, W]`` fp32 hidden states after the last block.
    """
    t0 = prefix_kv[0][0].shape[2]
    mask = suffix_mask(x.shape[1], t0, x.device)
    for lw, (kp, vp) in zip(layers, prefix_kv, strict=True):

        def attend(q, k, v, kp=kp, vp=vp):
            k = torch.cat([kp[ctx_id], k], dim=2)
            v = torch.cat([vp[ctx_id], v], dim=2)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        x = _block(x, lw, dtype, attend)
    return x


_COMPILED: dict = {}


def compiled(fn, mode: str):
    """``torch.compile(fn, mode=mode, dynamic=False)``, made once per (function, mode).

    Static shapes: one graph per suffix-length bucket and group size, which stay fixed from step to
    step when a step encodes all classes. ``mode="reduce-overhead"`` replays each graph with CUDA
    graphs (one launch instead of thousands). Not exercised on a GPU by the test suite.
    """
    key = (fn, mode)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(fn, mode=None if mode == "default" else mode, dynamic=False)
    return _COMPILED[key]


@dataclass(frozen=True)
class Plan:
    """Device index tensors of one (contexts, classes) layout: prompts grouped by suffix length.

    ``groups``: ``(S, class [Pg], context [Pg], eot [Pg])`` per suffix length S; ``inverse``: ``[P]``
    row of each prompt in the concatenated group outputs. Built on the CPU and sent in one copy.
    """

    groups: list[tuple[int, Tensor, Tensor, Tensor]]
    inverse: Tensor


def make_plan(
    class_idx: Tensor, lengths: Tensor, ctx_id: Tensor, width: int, bucket: int, device: torch.device
) -> Plan:
    """Group prompts by suffix length ``S = name tokens + 1`` rounded up to a multiple of ``bucket``.

    Padding after EOT is exact (the mask is causal, the feature is read at EOT). ``class_idx``,
    ``lengths`` (name-token counts) and ``ctx_id`` are ``[P]`` CPU tensors; ``width`` is the longest
    suffix the class names allow.
    """
    span = torch.minimum(((lengths + 1 + bucket - 1) // bucket) * bucket, torch.tensor(width))
    order, parts, sizes = [], [], []
    for s in torch.unique(span).tolist():
        rows = (span == s).nonzero(as_tuple=True)[0]
        order.append(rows)
        parts += [class_idx[rows], ctx_id[rows], lengths[rows]]
        sizes.append((int(s), len(rows)))
    order = torch.cat(order)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order))
    packed = torch.cat([*parts, inverse])
    if device.type == "cuda":
        packed = packed.pin_memory().to(device, non_blocking=True)
    else:
        packed = packed.to(device)
    chunks = packed.split([n for _, n in sizes for _ in range(3)] + [len(inverse)])
    groups = [(s, *chunks[3 * i : 3 * i + 3]) for i, (s, _) in enumerate(sizes)]
    return Plan(groups, chunks[-1])


def encode_shared(encoder, ctx_sets: Tensor, ctx_id: Tensor, classes, class_idx: Tensor) -> Tensor:
    """Features ``[P, D]`` of prompts ``[SOS] ctx_sets[ctx_id[p]] name[class_idx[p]] [EOT]``.

    Args:
        encoder: a :class:`negprompt.prompts.TextEncoder` whose tower :func:`supports` this module.
        ctx_sets: ``[K, L, W]`` the distinct contexts (differentiable).
        ctx_id: ``[P]`` context of each prompt; class_idx: ``[P]`` class of each prompt (CPU).
        classes: a :class:`negprompt.prompts.ClassNames` with ``n_ctx == L``.

    Returns:
        ``[P, D]`` L2-normalised float32 features, equal to the full-length encoding up to rounding.
    """
    device = ctx_sets.device
    dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else torch.float32
    tower = encoder.tower
    versions = tuple(p._version for p in tower.transformer.parameters())
    key = (dtype, str(device))
    if encoder._weights.get(key, (None,))[0] != versions:  # cast once; again only if weights changed
        encoder._weights[key] = (versions, layer_weights(tower, dtype))
    layers = encoder._weights[key][1]
    bucket = encoder.bucket or (4 if device.type == "cuda" else 1)
    ctx_id, class_idx = ctx_id.to(torch.long).cpu(), class_idx.to(torch.long).cpu()
    plans = classes.__dict__.setdefault("_plans", {})
    pkey = (ctx_id.numpy().tobytes(), class_idx.numpy().tobytes(), bucket, str(device))
    if pkey not in plans:
        if len(plans) >= 16:
            plans.clear()
        lengths = classes.lengths[class_idx]
        plans[pkey] = make_plan(class_idx, lengths, ctx_id, classes.suffix.shape[1], bucket, device)
    plan = plans[pkey]
    suffix_fn = compiled(run_suffixes, encoder.compile) if encoder.compile else run_suffixes
    with torch.autocast(device.type, enabled=False):
        t0 = 1 + ctx_sets.shape[1]
        pos = tower.positional_embedding.float()
        sos = encoder.sos_embedding().to(device)
        x = torch.cat([sos.expand(len(ctx_sets), 1, -1), ctx_sets.float()], dim=1) + pos[:t0]
        kv = run_prefixes(x, layers, dtype)
        outs = []
        for s, cls, ids, eot in plan.groups:
            xs = classes.suffix[cls, :s].to(device) + pos[t0 : t0 + s]
            hs = suffix_fn(xs, kv, ids, layers, dtype)
            outs.append(hs[torch.arange(len(cls), device=device), eot])
        # the final norm and projection in fp32 too: the tower's own weights may be bf16 or fp16
        ln = tower.ln_final
        x = _ln(torch.cat(outs)[plan.inverse], (ln.weight.float(), ln.bias.float(), ln.eps))
        proj = tower.text_projection
        if isinstance(proj, nn.Linear):
            x = F.linear(x, proj.weight.float(), None if proj.bias is None else proj.bias.float())
        else:
            x = x @ proj.float()
    return F.normalize(x.float(), dim=-1)
