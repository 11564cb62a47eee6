"""Where a training batch's image features come from: cached arrays, or images encoded every step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from negprompt.backbone import Backbone
from negprompt.distributed import all_gather_rows, get_info
from negprompt.features import shard_range


def as_views(features: Any, device: torch.device) -> Tensor:
    """Feature views as one float32 tensor ``[V, N, D]`` on ``device``.

    Accepts an array or tensor ``[N, D]`` (one view), ``[V, N, D]``, a list of ``[N, D]`` views, or
    objects with a ``.features`` array (cached features).
    """
    if hasattr(features, "features"):
        features = features.features
    if isinstance(features, Sequence) and not isinstance(features, np.ndarray | Tensor):
        if not features:
            raise ValueError("the list of feature views is empty")
        views = [as_views(v, device)[0] for v in features]
        shapes = {tuple(v.shape) for v in views}
        if len(shapes) > 1:
            raise ValueError(
                f"feature views differ in shape: {sorted(shapes)}; every view needs the same [N, D]"
            )
        return torch.stack(views)
    t = features if isinstance(features, Tensor) else torch.from_numpy(np.asarray(features, dtype=np.float32))
    t = t.detach().to(device=device, dtype=torch.float32)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise ValueError(f"features must be [N, D] or [V, N, D], got shape {tuple(t.shape)}")
    return t


def as_labels(labels: Any, n: int, n_classes: int, what: str = "labels") -> Tensor:
    """Labels as an int64 CPU tensor ``[N]``, checked against N and the number of classes."""
    if hasattr(labels, "labels") and not isinstance(labels, np.ndarray | Tensor):
        labels = labels.labels
    t = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if t.shape != (n,):
        raise ValueError(f"{what} have shape {tuple(t.shape)} but there are {n} feature rows")
    if n and (int(t.min()) < 0 or int(t.max()) >= n_classes):
        raise ValueError(
            f"{what} must lie in 0..{n_classes - 1} ({n_classes} class names); found {int(t.min())}..{int(t.max())}"
        )
    return t


class FeatureSource:
    """Cached features ``[V, N, D]``; each sample of a batch takes a random one of the V views."""

    def __init__(self, features: Any, labels: Any, n_classes: int, device: torch.device, local: Any = None):
        self.views = as_views(features, device)
        self.labels = as_labels(labels, self.views.shape[1], n_classes)
        self.n_views = self.views.shape[0]
        self.local = local  # [N, P, D] local features (LoCoOp), e.g. memory-mapped; or None
        if local is not None and (np.ndim(local) != 3 or len(local) != self.views.shape[1]):
            raise ValueError(
                f"local features must be [N, P, D] with N = {self.views.shape[1]}, got {np.shape(local)}"
            )

    def local_batch(self, idx: Tensor) -> Tensor | None:
        """``[B, P, D]`` float32 local features of samples ``idx`` (None without local features)."""
        if self.local is None:
            return None
        rows = np.asarray(self.local[np.sort(idx.numpy())], dtype=np.float32)
        order = np.argsort(np.argsort(idx.numpy()))  # back from sorted to idx order
        return torch.from_numpy(rows[order]).to(self.views.device)

    def __len__(self) -> int:
        return self.views.shape[1]

    def batch(self, idx: Tensor, generator: torch.Generator) -> Tensor:
        """``[B, D]`` features of samples ``idx`` (a random view each when there are several)."""
        dev_idx = idx.to(self.views.device)
        if self.n_views == 1:
            return self.views[0, dev_idx]
        view = torch.randint(self.n_views, (len(idx),), generator=generator).to(self.views.device)
        return self.views[view, dev_idx]


def _load(path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except Exception as exc:
        raise OSError(f"cannot read training image {path}: {exc}") from exc


class OnlineSource:
    """Images encoded every step with ``backbone.train_transform`` (the authors' online augmentation).

    ``images`` is an ImageSet-like object with ``.abspath(i)`` and ``.labels``. The crop and flip of
    each sample are seeded from the training generator, so runs are reproducible. Under ``torchrun``
    each rank augments and encodes a contiguous slice of the batch and the features are gathered,
    so every rank holds the batch one process would have encoded.
    """

    n_views = 1

    def __init__(self, images: Any, backbone: Backbone, n_classes: int):
        if not hasattr(images, "abspath"):
            raise ValueError(
                "mode='online-augment' needs an image set with .abspath(i) and .labels, not arrays"
            )
        self.images = images
        self.backbone = backbone
        self.labels = as_labels(np.asarray(images.labels), len(images.labels), n_classes)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: Tensor, generator: torch.Generator) -> Tensor:
        """``[B, D]`` features of freshly augmented images ``idx``."""
        seed = int(torch.randint(2**62, (1,), generator=generator))
        info = get_info()
        start, stop = shard_range(len(idx), info.rank, info.world)
        pixels = []
        with torch.random.fork_rng(devices=[]):
            for j in range(start, stop):  # sample j's augmentation depends on j, not on the rank
                torch.manual_seed(seed + j)
                pixels.append(self.backbone.train_transform(_load(self.images.abspath(int(idx[j])))))
        if pixels:
            local = self.backbone.encode_images(torch.stack(pixels)).float()
        else:  # more ranks than samples in this batch
            local = torch.zeros(0, self.backbone.embed_dim, device=self.backbone.device)
        return all_gather_rows(local)


def encode_image_set(backbone: Backbone, images: Any, batch_size: int = 64) -> Tensor:
    """``[N, D]`` features of an ImageSet-like object under the test transform (validation)."""
    out = []
    n = len(images.labels)
    for start in range(0, n, batch_size):
        batch = [
            backbone.preprocess(_load(images.abspath(i))) for i in range(start, min(n, start + batch_size))
        ]
        out.append(backbone.encode_images(torch.stack(batch)).float())
    return torch.cat(out) if out else torch.zeros(0, backbone.embed_dim)
