"""Patch-level (local) image features of an open_clip ViT in the joint image–text space.

CLIP's image feature is the CLS token after the last block, ``ln_post`` and ``proj``. The patch
tokens of the same output are not aligned with text (the last attention mixes every token into every
other one). GL-MCM (Miyai et al., 2023) and LoCoOp (Miyai et al., NeurIPS 2023) therefore read each
patch through the *value path* of the last attention block, i.e. the block run with every token
attending only to itself:

    y_i = x_i + ls_1(W_o (W_v ln_1(x_i) + b_v) + b_o)
    z_i = y_i + ls_2(mlp(ln_2(y_i)))
    local_i = normalise(ln_post(z_i) · proj)          i = 1 … P (the patches)

with x_i the token entering the last block and W_v, b_v, W_o, b_o its attention's value and output
projections. (The same choice as both papers' code, which is MaskCLIP's value-embedding trick
(Zhou et al., ECCV 2022) followed by the block's MLP; attention weights are not used.)

A forward hook on the last block records its input and output while ``encode_image`` runs, so one
pass gives both: the global feature ``normalise(ln_post(block(x)_0) · proj)`` — exactly the model's
own ``encode_image`` output, which the tests check — and the P local features. Supported: ViTs with a
CLS token (``pool_type="tok"``), no attentional pooler, ``nn.MultiheadAttention`` blocks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from negprompt import scores as S
from negprompt.backbone import Backbone
from negprompt.progress import tqdm

__all__ = ["encode_global_local", "last_block", "local_from_block_input", "local_scores", "supports_local"]


def _visual(model: nn.Module) -> nn.Module:
    visual = getattr(model, "visual", None)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if visual is None or blocks is None or not len(blocks):
        raise ValueError(
            f"{type(model).__name__} has no ViT image tower (visual.transformer.resblocks); "
            "local features need an open_clip ViT such as ViT-B-16"
        )
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
        raise ValueError(
            "local features need a ViT pooled by its CLS token (pool_type='tok', no attentional "
            "pooler); pick a standard CLIP ViT such as ViT-B-16"
        )
    if getattr(visual, "final_ln_after_pool", False):
        raise ValueError("local features do not support final_ln_after_pool ViTs; use a standard CLIP ViT")
    return visual


def supports_local(backbone: Backbone | nn.Module) -> bool:
    """Whether `encode_global_local` works on this model (a CLS-pooled ViT with standard blocks)."""
    try:
        last_block(backbone.model if isinstance(backbone, Backbone) else backbone)
    except ValueError:
        return False
    return True


def last_block(model: nn.Module) -> nn.Module:
    """The last residual attention block of the image tower (where the hook is attached)."""
    block = _visual(model).transformer.resblocks[-1]
    if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
        raise ValueError(
            f"the last image block's attention is {type(getattr(block, 'attn', None)).__name__}, not "
            "nn.MultiheadAttention; local features support open_clip's standard ViT blocks"
        )
    return block


def _value_path(block: nn.Module, x: Tensor) -> Tensor:
    """The block with self-only attention: ``y = x + ls_1(out_proj(v(ln_1 x)))``, then the MLP. [B, L, W]."""
    attn: nn.MultiheadAttention = block.attn
    width = x.shape[-1]
    if attn._qkv_same_embed_dim:
        w_v = attn.in_proj_weight[2 * width :]
    else:
        w_v = attn.v_proj_weight
    b_v = None if attn.in_proj_bias is None else attn.in_proj_bias[2 * width :]
    v = F.linear(block.ln_1(x), w_v, b_v)
    y = x + block.ls_1(attn.out_proj(v))
    return y + block.ls_2(block.mlp(block.ln_2(y)))


def _project(visual: nn.Module, tokens: Tensor) -> Tensor:
    """``normalise(ln_post(tokens) · proj)`` in float32. [..., W] -> [..., D]."""
    out = visual.ln_post(tokens)
    if visual.proj is not None:
        out = out @ visual.proj
    return F.normalize(out.float(), dim=-1)


def local_from_block_input(model: nn.Module, x: Tensor, batch_first: bool = True) -> Tensor:
    """Local features ``[B, P, D]`` (L2-normalised) from the tokens ``x`` entering the last block.

    Args:
        model: the open_clip CLIP model.
        x: ``[B, 1 + P, W]`` (or ``[1 + P, B, W]`` when ``batch_first`` is False) block input.
    """
    visual = _visual(model)
    if not batch_first:
        x = x.transpose(0, 1)
    return _project(visual, _value_path(last_block(model), x)[:, 1:])


@contextlib.contextmanager
def _record_last_block(model: nn.Module) -> Iterator[dict]:
    seen: dict = {}

    def hook(_module, args, output):
        seen["input"], seen["output"] = args[0], output

    handle = last_block(model).register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@torch.no_grad()
def encode_global_local(backbone: Backbone | nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """Global and local features of a preprocessed batch from one forward pass.

    Args:
        backbone: a :class:`negprompt.backbone.Backbone` (or an open_clip model, on its device).
        images: ``[B, 3, H, W]`` preprocessed images.

    Returns:
        ``(global [B, D], local [B, P, D])``, float32, L2-normalised; ``global`` is computed from
        the hooked CLS token and equals ``normalise(encode_image(images))``; P = (H / patch)².
    """
    model = backbone.model if isinstance(backbone, Backbone) else backbone
    visual = _visual(model)
    device = next(visual.parameters()).device
    dtype = next(visual.parameters()).dtype
    batch_first = getattr(visual.transformer, "batch_first", True)
    with _record_last_block(model) as seen:
        model.encode_image(images.to(device=device, dtype=dtype))
    if "input" not in seen:
        raise RuntimeError("the last image block did not run; is this an open_clip ViT?")
    out = seen["output"] if batch_first else seen["output"].transpose(0, 1)
    global_ = _project(visual, out[:, 0])
    return global_, local_from_block_input(model, seen["input"], batch_first)


class _PathImages(Dataset):
    """Preprocessed images of a list of files (every file must be readable)."""

    def __init__(self, files: Sequence[Path], transform) -> None:
        self.files, self.transform = list(files), transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor:
        try:
            with Image.open(self.files[i]) as im:
                return self.transform(im)
        except Exception as err:
            raise ValueError(f"cannot read image {self.files[i]}: {err}; fix or remove the file") from err


def local_scores(
    backbone: Backbone,
    files: Sequence[str | os.PathLike],
    pos_texts: Mapping[str, Tensor],
    *,
    names: Sequence[str] = ("gl_mcm", "l_mcm"),
    temperature: float = 1.0,
    batch_size: int = 64,
    progress: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Scores that need local features, computed while the images are encoded (nothing [N, P, D] kept).

    One forward pass per batch gives the global and local features (`encode_global_local`), which
    are scored against each text set at once; only the [N] scores are kept, so test sets of any
    size cost O(N) memory. The region that drove the decision is kept too, as the key
    ``"best_region"``: argmax_p max_c softmax_c(s_{p,c}/T), a patch index in row-major grid order.

    Args:
        backbone: the frozen ViT backbone.
        files: N image files, in the order of the cached features they go with.
        pos_texts: method name -> [C, D] L2-normalised positive prompt features.
        names: registered scores to compute (any, typically those that `needs_local`).
        temperature: T > 0.

    Returns:
        ``{method: {score name: [N] float64, "best_region": [N] int64}}``.
    """
    loader = DataLoader(_PathImages([Path(f) for f in files], backbone.preprocess), batch_size=batch_size)
    parts: dict[str, dict[str, list[np.ndarray]]] = {m: {} for m in pos_texts}
    for images in tqdm(loader, desc="local scores", unit="batch", disable=not progress):
        glob, loc = encode_global_local(backbone, images)
        glob, loc = glob.cpu(), loc.cpu()
        for method, pos in pos_texts.items():
            pos = pos.detach().float().cpu()
            out = S.score_all(list(names), glob, pos, None, temperature, local_features=loc)
            z = (loc @ pos.T) / temperature
            out["best_region"] = (z.amax(dim=2) - torch.logsumexp(z, dim=2)).argmax(dim=1)
            for key, value in out.items():
                parts[method].setdefault(key, []).append(value.numpy())
    return {
        m: {k: np.concatenate(v).astype(np.int64 if k == "best_region" else np.float64) for k, v in d.items()}
        for m, d in parts.items()
    }
