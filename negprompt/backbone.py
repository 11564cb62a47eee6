"""The frozen open_clip model: a :class:`Backbone` wrapper and :func:`load_backbone`.

Weights are kept apart from the architecture, as in open_clip: ``load_backbone("ViT-B-16",
pretrained="laion2b_s34b_b88k")``. Which weights a name means, and reading them safely, is
`negprompt.weights`; this module builds the model, puts the weights in, and wraps it with its
transforms and tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn
from torchvision import transforms as T

from negprompt import bundled
from negprompt.weights import (  # noqa: F401  (re-exported: the public names of negprompt.backbone)
    RANDOM_WEIGHTS_WARNING,
    WeightsError,
    available_tags,
    check_hub,
    find_weights,
    load_weights,
    network_available,
)

log = logging.getLogger(__name__)

TINY_MODEL = "negprompt-tiny"
"""A tiny registered architecture (random weights only) for tests and offline smoke runs."""
MINI_MODEL = bundled.MINI_MODEL
"""The bundled mini-CLIP, pretrained on the mini-world; its weights ship in the package."""
MINI_TAG = bundled.MINI_TAG

open_clip.add_model_config(Path(__file__).parent / "model_configs")
_PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass
class Backbone:
    """A frozen CLIP model with everything needed to encode images and prompts.

    Attributes:
        model: the open_clip model, eval mode, ``requires_grad`` off everywhere.
        name: architecture name (``ViT-B-16``) or hub id (``hf-hub:org/repo``).
        pretrained: what was asked for (``auto``, a tag, a file, ``none``).
        weights: what was loaded: a tag, a hub id, a file path, or ``random``.
        random_weights: True when the towers carry random weights.
        warning: the loud warning to record in every output, or None.
        preprocess: test-time image transform (resize + centre crop + normalise).
        train_transform: the authors' training augmentation (resize, random crop with padding 4,
            horizontal flip, normalise).
        tokenizer: open_clip tokenizer for this model.
        device, precision: where the model lives and its weight dtype.
    """

    model: nn.Module
    name: str
    pretrained: str
    weights: str
    random_weights: bool
    warning: str | None
    preprocess: Any
    train_transform: Any
    tokenizer: Any
    device: torch.device
    precision: str = "fp32"
    weights_fingerprint: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def embed_dim(self) -> int:
        """Width D of the joint image-text feature space."""
        proj = self.text_tower.text_projection
        return proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1]

    @property
    def text_tower(self) -> nn.Module:
        """The module that owns token_embedding, transformer, ln_final and text_projection."""
        return self.model.text if hasattr(self.model, "text") else self.model

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return size[0] if isinstance(size, tuple | list) else int(size)

    def identity(self) -> dict:
        """What identifies the image features this backbone produces (feature-cache key part).

        The architecture's config (a digest of open_clip's model config), the weights (tag, file
        fingerprint, or ``random/seed=S``) and the precision.
        """
        config = json.dumps(open_clip.get_model_config(self.name), sort_keys=True, default=str)
        return {
            "model": self.name,
            "model_config": hashlib.sha256(config.encode()).hexdigest()[:16],
            "weights": self.weights,
            "weights_fingerprint": self.weights_fingerprint,
            "precision": self.precision,
        }

    def describe(self) -> dict:
        """JSON-ready description for run directories and logs."""
        return {
            "name": self.name,
            "pretrained": self.pretrained,
            "weights": self.weights,
            "random_weights": self.random_weights,
            "warning": self.warning,
            "precision": self.precision,
        }

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image features ``[N, D]`` (float32) of a preprocessed batch ``[N, 3, H, W]``."""
        images = images.to(self.device, non_blocking=True)
        dtype = next(self.model.visual.parameters()).dtype
        feats = self.model.encode_image(images.to(dtype))
        return torch.nn.functional.normalize(feats.float(), dim=-1)


def available_models() -> list[str]:
    """Architecture names open_clip knows, ours included."""
    return open_clip.list_models()


def train_transform(image_size: int, mean: tuple, std: tuple) -> T.Compose:
    """The authors' augmentation: resize, random crop with padding 4, horizontal flip, normalise."""
    return T.Compose(
        [
            T.Lambda(_to_rgb),
            T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC),
            T.RandomCrop(image_size, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def _to_rgb(image):
    return image.convert("RGB")


def load_backbone(
    name: str,
    pretrained: str | os.PathLike | None = "auto",
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    weights_dir: str | os.PathLike | None = None,
    network_timeout: float = 3.0,
    seed: int = 0,
) -> Backbone:
    """Load a frozen open_clip model with its transforms and tokenizer.

    Args:
        name: an open_clip architecture (``ViT-B-16``, ``negprompt-tiny``) or a hub id
            (``hf-hub:org/repo``; then ``pretrained`` is ignored).
        pretrained: an open_clip tag (``openai``, ``laion2b_s34b_b88k``), a hub id, a local checkpoint
            file (``.safetensors``, or a ``.pt``/``.bin`` state dict read with ``weights_only``),
            ``none`` for random weights, or ``auto`` (real weights when they can be had, else random
            weights with a warning; gives up on the network within ``network_timeout`` seconds).
            See `negprompt.weights.find_weights`.
        device: torch device.
        precision: ``fp32``, ``fp16`` or ``bf16`` weights.
        weights_dir: download cache for weights (default: the hub's cache).
        seed: seed of the random initialisation (what random weights are, and what real weights
            overwrite), so that random-weight runs are reproducible.

    Raises:
        ValueError: unknown architecture or precision (the message lists valid choices).
        WeightsError: unknown tag, missing file, failed download, or a checkpoint that does not fit.
    """
    if precision not in _PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(_PRECISIONS)}")
    pretrained = "none" if pretrained is None else str(pretrained)
    if pretrained.startswith("hf-hub:") and not name.startswith("hf-hub:"):
        name, pretrained = pretrained, "hub"
    device = torch.device(device)

    if name.startswith("hf-hub:"):
        return _load_from_hub(name, pretrained, device, precision, weights_dir, network_timeout)
    _check_architecture(name)
    chosen = find_weights(
        name, pretrained, weights_dir=weights_dir, network_timeout=network_timeout, seed=seed
    )
    cfg = chosen.tag_config
    quiet = _DropOpenClipRandomInit() if chosen.checkpoint is not None else None
    if quiet:  # the weights come next: open_clip's "initialized randomly" line would be false
        logging.getLogger().addFilter(quiet)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # random weights are reproducible: the same seed gives the same model
            model, _, preprocess = open_clip.create_model_and_transforms(
                name,
                pretrained=None,
                precision="fp32",
                device="cpu",
                force_quick_gelu=bool(cfg.get("quick_gelu", False)),
                image_mean=cfg.get("mean"),
                image_std=cfg.get("std"),
                image_interpolation=cfg.get("interpolation"),
                image_resize_mode=cfg.get("resize_mode"),
            )
    finally:
        if quiet:
            logging.getLogger().removeFilter(quiet)
    if chosen.checkpoint is not None:
        load_weights(model, chosen.checkpoint)
    return _finish(
        model,
        preprocess,
        name,
        pretrained,
        chosen.name,
        chosen.warning,
        chosen.fingerprint,
        device,
        precision,
    )


def _check_architecture(name: str) -> None:
    """Raise ValueError for an architecture open_clip does not know, with the closest names."""
    if name in open_clip.list_models():
        return
    import difflib

    models = open_clip.list_models()
    close = difflib.get_close_matches(name, models, n=5, cutoff=0.5) or difflib.get_close_matches(
        name.lower(), [m.lower() for m in models], n=5, cutoff=0.4
    )
    close = [next(m for m in models if m.lower() == c.lower()) for c in close]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(
        f"unknown model {name!r}; {hint}{len(models)} architectures are known (list them with "
        "`python -c 'import open_clip; print(open_clip.list_models())'`), or give a hub id such as "
        "'hf-hub:timm/ViT-B-16-SigLIP'."
    )


class _DropOpenClipRandomInit(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded" warning while weights are about to be loaded."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("No pretrained weights loaded")


def _finish(
    model, preprocess, name, pretrained, weights, warning, fingerprint, device, precision
) -> Backbone:
    if warning:
        log.warning(warning)
        warnings.warn(warning, stacklevel=3)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    model = model.to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, tuple | list) else int(image_size)
    norm = [t for t in preprocess.transforms if isinstance(t, T.Normalize)]
    mean, std = (
        (norm[0].mean, norm[0].std) if norm else (open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    )
    return Backbone(
        model=model,
        name=name,
        pretrained=pretrained,
        weights=weights,
        random_weights=weights == "random",
        warning=warning,
        preprocess=preprocess,
        train_transform=train_transform(image_size, tuple(mean), tuple(std)),
        tokenizer=open_clip.get_tokenizer(name),
        device=device,
        precision=precision,
        weights_fingerprint=fingerprint,
    )


def _load_from_hub(name, pretrained, device, precision, weights_dir, timeout) -> Backbone:
    if pretrained.lower() == "none":
        raise WeightsError("a hub id always carries weights; use an architecture name for random weights")
    check_hub(name, timeout)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, cache_dir=weights_dir)
    except Exception as exc:
        raise WeightsError(f"cannot load {name}: {exc}") from exc
    return _finish(model, preprocess, name, pretrained, name, None, name, device, precision)
