"""Load a frozen open_clip model: architecture name, weights (tag, hub id, local file, none, auto), device.

Weights are kept apart from the architecture, as in open_clip: ``load_backbone("ViT-B-16",
pretrained="laion2b_s34b_b88k")``. Every weights file is read through a safe path (safetensors, or
``torch.load(weights_only=True)``). ``pretrained="auto"`` takes real weights when they can be had (a
local file, the download cache, or a download when the network answers) and otherwise falls back to
random weights with a loud warning that every output of the run records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn
from torchvision import transforms as T

from negprompt import bundled

log = logging.getLogger(__name__)

TINY_MODEL = "negprompt-tiny"
"""A tiny registered architecture (random weights only) for tests and offline smoke runs."""
MINI_MODEL = bundled.MINI_MODEL
"""The bundled mini-CLIP, pretrained on the mini-world; its weights ship in the package."""
MINI_TAG = bundled.MINI_TAG

open_clip.add_model_config(Path(__file__).parent / "model_configs")

# Preferred weights for ``pretrained="auto"``, first match wins; then any tag open_clip knows.
_AUTO_PREFERENCE = ("laion2b_s34b_b88k", "openai", "laion2b_s34b_b79k", "datacomp_xl_s13b_b90k")
_PRECISIONS = ("fp32", "fp16", "bf16")
_HUB_HOST = ("huggingface.co", 443)
RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS: no pretrained weights could be loaded for {name!r} ({why}). The image and text "
    "towers are randomly initialised, so every score and metric of this run is meaningless as a result; "
    "it only exercises the pipeline. Pass --pretrained with a tag, hub id or local checkpoint file."
)


class WeightsError(ValueError):
    """Weights that cannot be found, downloaded or loaded into the requested architecture."""


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


def available_tags(name: str) -> list[str]:
    """Pretrained tags for an architecture: the bundled ones first, then those open_clip knows."""
    return bundled.tags(name) + open_clip.list_pretrained_tags_by_model(name)


def network_available(timeout: float = 3.0) -> bool:
    """Whether the model hub answers within ``timeout`` seconds (False when offline mode is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(_HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


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
    cache_dir: str | os.PathLike | None = None,
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
        device: torch device.
        precision: ``fp32``, ``fp16`` or ``bf16`` weights.
        cache_dir: download cache for weights (default: the hub's cache).
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
        return _load_from_hub(name, pretrained, device, precision, cache_dir, network_timeout)

    if name not in open_clip.list_models():
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
    tags = available_tags(name)
    tag_cfg: dict = {}
    checkpoint: Path | None = None
    # random weights are what the seed makes them, so the seed is part of their identity
    weights, warning, fingerprint = "random", None, f"random/seed={int(seed)}"

    if pretrained.lower() == "none":
        warning = RANDOM_WEIGHTS_WARNING.format(name=name, why="pretrained='none' asks for random weights")
    elif Path(pretrained).expanduser().is_file():
        checkpoint = Path(pretrained).expanduser().resolve()
        weights, fingerprint = str(checkpoint), _file_fingerprint(checkpoint)
    elif pretrained in bundled.tags(name) or (pretrained.lower() == "auto" and bundled.tags(name)):
        tag = pretrained if pretrained in bundled.tags(name) else bundled.tags(name)[0]
        try:
            checkpoint = bundled.verified_weights(name, tag)
        except bundled.BundledWeightsError as exc:
            raise WeightsError(str(exc)) from exc
        weights, fingerprint = tag, f"{name}/{tag}:{bundled.read_card(name, tag)['sha256'][:16]}"
    elif pretrained.lower() == "auto":
        tag, checkpoint, why = _auto_weights(name, tags, cache_dir, network_timeout)
        if checkpoint is None:
            warning = RANDOM_WEIGHTS_WARNING.format(name=name, why=why)
        else:
            tag_cfg = open_clip.get_pretrained_cfg(name, tag)
            weights, fingerprint = tag, f"{name}/{tag}"
    elif pretrained in tags:
        tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
        checkpoint = _download(tag_cfg, cache_dir, name, pretrained, network_timeout)
        weights, fingerprint = pretrained, f"{name}/{pretrained}"
    else:
        looks_like_path = any(sep in pretrained for sep in "/\\") or pretrained.endswith(
            (".pt", ".pth", ".bin", ".safetensors")
        )
        if looks_like_path:
            raise WeightsError(f"checkpoint file not found: {pretrained}")
        valid = ", ".join(tags) if tags else "(none: this architecture has no published weights)"
        raise WeightsError(
            f"unknown pretrained tag {pretrained!r} for {name}. Valid tags: {valid}; "
            "or a local checkpoint file, a hub id 'hf-hub:org/repo', 'none' or 'auto'."
        )

    quiet = _DropOpenClipRandomInit() if checkpoint is not None else None
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
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                image_mean=tag_cfg.get("mean"),
                image_std=tag_cfg.get("std"),
                image_interpolation=tag_cfg.get("interpolation"),
                image_resize_mode=tag_cfg.get("resize_mode"),
            )
    finally:
        if quiet:
            logging.getLogger().removeFilter(quiet)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    return _finish(model, preprocess, name, pretrained, weights, warning, fingerprint, device, precision)


class _DropOpenClipRandomInit(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded" warning while weights are about to be loaded."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("No pretrained weights loaded")


def load_weights(model: nn.Module, checkpoint: str | os.PathLike) -> None:
    """Load a checkpoint file into ``model`` through a safe path, or explain the mismatch.

    Raises:
        WeightsError: the file cannot be read safely, or its tensors do not fit the architecture
            (the message names missing, unexpected and wrongly shaped entries).
    """
    from open_clip.factory import load_state_dict

    try:
        state = load_state_dict(str(checkpoint), device="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, truncated files, wrong formats
        raise WeightsError(
            f"cannot read checkpoint {checkpoint} safely ({type(exc).__name__}: {exc}). "
            "Use a .safetensors file or a plain state dict saved with torch.save."
        ) from exc
    try:
        from open_clip.factory import convert_state_dict

        state = convert_state_dict(model, state)
    except ImportError:  # older open_clip
        pass
    expected = model.state_dict()
    for key in ("logit_scale", "logit_bias"):
        if key in state and key in expected and state[key].ndim != expected[key].ndim:
            state[key] = state[key].reshape(expected[key].shape)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es), e.g. {'; '.join(wrong[:3])}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {', '.join(unexpected[:3])}")
        raise WeightsError(
            f"checkpoint {checkpoint} does not fit this architecture: {'; '.join(parts)}. "
            "Check that the model name matches the checkpoint."
        )
    model.load_state_dict(state, strict=True)


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


def _auto_weights(name: str, tags: list[str], cache_dir, timeout: float) -> tuple[str, Path | None, str]:
    """Pick real weights for ``auto``: cached first, then a download if the network answers."""
    if not tags:
        return "", None, "this architecture has no published weights"
    ordered = [t for t in _AUTO_PREFERENCE if t in tags] + [t for t in tags if t not in _AUTO_PREFERENCE]
    for tag in ordered:
        cached = _cached_file(open_clip.get_pretrained_cfg(name, tag), cache_dir)
        if cached is not None:
            return tag, cached, ""
    if not network_available(timeout):
        return "", None, "no cached weights and the model hub cannot be reached"
    tag = ordered[0]
    try:
        return tag, _download(open_clip.get_pretrained_cfg(name, tag), cache_dir, name, tag, timeout), ""
    except WeightsError as exc:
        return "", None, str(exc)


def _cached_file(cfg: dict, cache_dir) -> Path | None:
    """The weights file of a tag if it is already in the local hub cache (no network)."""
    if cfg.get("file") and Path(cfg["file"]).is_file():
        return Path(cfg["file"])
    hub = cfg.get("hf_hub", "")
    if not hub:
        return None
    from huggingface_hub import try_to_load_from_cache

    repo, filename = os.path.split(hub)
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename.endswith(".bin"):
        names.insert(0, filename[: -len(".bin")] + ".safetensors")
    for fname in names:
        found = try_to_load_from_cache(repo_id=repo, filename=fname, cache_dir=cache_dir)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _download(cfg: dict, cache_dir, name: str, tag: str, timeout: float) -> Path:
    cached = _cached_file(cfg, cache_dir)
    if cached is not None:
        return cached
    if not network_available(timeout):
        hub = cfg.get("hf_hub", "")
        source = (
            f"https://huggingface.co/{os.path.split(hub)[0]} (file {os.path.split(hub)[1] or 'open_clip_model.safetensors'})"
            if hub
            else cfg.get("url") or "its source"
        )
        raise WeightsError(
            f"weights {name}/{tag} are not cached and the model hub cannot be reached. On a machine with "
            f"network access fetch them from {source}, copy the file here and pass it with "
            "--pretrained PATH (or use 'none'/'auto')."
        )
    try:
        return Path(open_clip.download_pretrained(cfg, cache_dir=cache_dir))
    except Exception as exc:
        raise WeightsError(f"download of {name}/{tag} failed: {exc}") from exc


def _load_from_hub(name, pretrained, device, precision, cache_dir, timeout) -> Backbone:
    if pretrained.lower() == "none":
        raise WeightsError("a hub id always carries weights; use an architecture name for random weights")
    if not network_available(timeout):
        raise WeightsError(
            f"{name} cannot be fetched: the model hub cannot be reached. Download the repository elsewhere "
            "and pass its weights file with --pretrained PATH and the matching architecture name."
        )
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, cache_dir=cache_dir)
    except Exception as exc:
        raise WeightsError(f"cannot load {name}: {exc}") from exc
    return _finish(model, preprocess, name, pretrained, name, None, name, device, precision)


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
