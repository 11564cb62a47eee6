"""LoCoOp (Miyai, Yu, Irie, Aizawa, "LoCoOp: Few-Shot Out-of-Distribution Detection via Prompt
Learning", NeurIPS 2023): CoOp plus an OOD regularisation of the image's own background regions.

Local regions whose top-K class predictions leave out the image's true class are taken as OOD
stand-ins, and the entropy of their class distribution is *maximised*, so that at test time
ID-irrelevant content matches no ID class. On cached features: the global features of the few-shot
images train the CE term as CoOp does; their local features (`negprompt.local`, cached here as fp16
[N, P, D], memory-mapped) feed the regulariser. ImageNet settings of the paper: λ = 0.25, K = 200
(of C = 1000 classes, i.e. 20%).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from negprompt.backbone import Backbone
from negprompt.progress import tqdm

__all__ = ["LOCOOP_LAMBDA", "default_top_k", "extract_local_features", "locoop_ood_loss"]

LOCOOP_LAMBDA = 0.25
"""λ, the weight of the OOD regularisation (the paper's ImageNet setting)."""


def default_top_k(n_classes: int) -> int:
    """K = 20% of the classes, at least 1: the paper's K = 200 at C = 1000."""
    return max(1, round(0.2 * n_classes))


def locoop_ood_loss(
    local_features: Tensor, pos_text: Tensor, labels: Tensor, logit_scale: float, top_k: int
) -> Tensor:
    """LoCoOp's OOD regularisation: minus the mean entropy of the selected local regions.

    With z_{b,p,c} = τ⁻¹ cos(g_{b,p}, t_c) and q_{b,p} = softmax_c(z_{b,p}), the selected regions are
    J = {(b, p) : y_b ∉ top-K_c z_{b,p,c}}, and

        L_ood = −(1/|J|) Σ_{(b,p)∈J} H(q_{b,p}),   H(q) = −Σ_c q_c log q_c   (0 when J is empty).

    (The authors' code writes log(q + 1e−5); here log q exactly, from log_softmax.) LoCoOp trains
    L = CE + λ L_ood.

    Args:
        local_features: [B, P, D] local features. pos_text: [C, D] learned positive features.
        labels: [B] in 0 … C−1. logit_scale: log τ⁻¹. top_k: K, in 1 … C.

    Returns:
        Scalar loss in [−log C, 0].
    """
    n_classes = pos_text.shape[0]
    if not 1 <= top_k <= n_classes:
        raise ValueError(f"top_k must lie in [1, {n_classes}] (the number of classes), got {top_k}")
    g = F.normalize(local_features.float(), dim=-1)
    z = torch.exp(torch.as_tensor(float(logit_scale))) * g @ F.normalize(pos_text.float(), dim=-1).T
    top = z.topk(top_k, dim=-1).indices  # [B, P, K]
    keep = ~(top == labels.view(-1, 1, 1)).any(dim=-1)  # [B, P]
    if not bool(keep.any()):
        return z.sum() * 0.0  # keeps the graph: a zero gradient, not a missing one
    logq = F.log_softmax(z[keep], dim=-1)
    entropy = -(logq.exp() * logq).sum(dim=-1)
    return -entropy.mean()


def extract_local_features(
    backbone: Backbone,
    files: list[Path],
    *,
    cache_dir: str | os.PathLike,
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Local features [N, P, D] of image files (test transform), cached: fp16, memory-mapped.

    The entry is keyed by the backbone's identity, the transform and the files (paths, sizes and
    modification times), built under a temporary name and renamed when complete, so an entry with
    the final name always loads. Meant for few-shot training sets: at 196 patches × 512 × 2 bytes
    it costs about 200 KB per image.
    """
    from torch.utils.data import DataLoader

    from negprompt.io import publish_dir
    from negprompt.local import _PathImages, encode_global_local

    stats = [(str(f), Path(f).stat().st_size, Path(f).stat().st_mtime_ns) for f in files]
    key = {"backbone": backbone.identity(), "transform": repr(backbone.preprocess), "files": stats}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    final = Path(cache_dir) / "local" / digest
    if (final / "local.npy").is_file():
        return np.load(final / "local.npy", mmap_mode="r")
    tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    out = None
    loader = DataLoader(_PathImages(files, backbone.preprocess), batch_size=batch_size)
    row = 0
    for images in tqdm(loader, desc="local features", unit="batch", disable=not progress):
        loc = encode_global_local(backbone, images)[1].cpu().numpy().astype(np.float16)
        if out is None:
            shape = (len(files), *loc.shape[1:])
            out = np.lib.format.open_memmap(tmp / "local.npy", mode="w+", dtype=np.float16, shape=shape)
        out[row : row + len(loc)] = loc
        row += len(loc)
    out.flush()
    del out
    (tmp / "key.json").write_text(json.dumps(key))
    publish_dir(tmp, final)
    return np.load(final / "local.npy", mmap_mode="r")
