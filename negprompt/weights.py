"""Find and read the weights of an open_clip architecture: bundled, a tag, a hub id, a file, none, auto.

:func:`find_weights` decides *which* weights a backbone gets (and how they are named in every record
of a run) without building a model; :func:`load_weights` reads a checkpoint file into a model
through a safe path (safetensors, or ``torch.load(weights_only=True)``). The model wrapper itself
is `negprompt.backbone`.

``pretrained="auto"`` takes real weights when they can be had (the bundled file of a project model,
a local file, the download cache, or a download when the network answers) and otherwise falls back
to random weights with a loud warning that every output of the run records.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import open_clip
from torch import nn

from negprompt import bundled

log = logging.getLogger("negprompt.backbone")

# Preferred weights for ``pretrained="auto"``, first match wins; then any tag open_clip knows.
_AUTO_PREFERENCE = ("laion2b_s34b_b88k", "openai", "laion2b_s34b_b79k", "datacomp_xl_s13b_b90k")
_HUB_HOST = ("huggingface.co", 443)
RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS: no pretrained weights could be loaded for {name!r} ({why}). The image and text "
    "towers are randomly initialised, so every score and metric of this run is meaningless as a result; "
    "it only exercises the pipeline. Pass --pretrained with a tag, hub id or local checkpoint file."
)


class WeightsError(ValueError):
    """Weights that cannot be had: unknown tag, missing or unreadable file, failed download."""


@dataclass(frozen=True)
class Weights:
    """The weights chosen for an architecture (nothing loaded yet).

    Attributes:
        checkpoint: the file to load, or None for random weights.
        tag_config: open_clip's settings of the tag (quick GELU, normalisation …); empty otherwise.
        name: what the run records as its weights: ``random``, a tag, or the checkpoint's path.
        fingerprint: identity of the weights' values (part of every feature-cache key).
        warning: the random-weights warning, or None.
    """

    checkpoint: Path | None
    tag_config: dict = field(default_factory=dict)
    name: str = "random"
    fingerprint: str = "random/seed=0"
    warning: str | None = None


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


def find_weights(
    name: str,
    pretrained: str,
    *,
    weights_dir: str | os.PathLike | None = None,
    network_timeout: float = 3.0,
    seed: int = 0,
) -> Weights:
    """Which weights architecture ``name`` gets for ``pretrained`` (see `negprompt.backbone.load_backbone`).

    Random weights are what ``seed`` makes them, so the seed is part of their fingerprint.

    Raises:
        WeightsError: unknown tag (the message lists the valid ones), missing file, damaged bundled
            weights, or weights that are neither cached nor downloadable.
    """
    tags = available_tags(name)
    random = Weights(None, fingerprint=f"random/seed={int(seed)}")
    if pretrained.lower() == "none":
        why = "pretrained='none' asks for random weights"
        return Weights(
            None, fingerprint=random.fingerprint, warning=RANDOM_WEIGHTS_WARNING.format(name=name, why=why)
        )
    if Path(pretrained).expanduser().is_file():
        checkpoint = Path(pretrained).expanduser().resolve()
        return Weights(checkpoint, name=str(checkpoint), fingerprint=_file_fingerprint(checkpoint))
    if pretrained in bundled.tags(name) or (pretrained.lower() == "auto" and bundled.tags(name)):
        tag = pretrained if pretrained in bundled.tags(name) else bundled.tags(name)[0]
        try:
            checkpoint = bundled.verified_weights(name, tag)
        except bundled.BundledWeightsError as exc:
            raise WeightsError(str(exc)) from exc
        sha = bundled.read_card(name, tag)["sha256"][:16]
        return Weights(
            checkpoint, name=tag, fingerprint=f"{name}/{tag}:{sha}", warning=bundled.shortfall(name, tag)
        )
    if pretrained.lower() == "auto":
        tag, checkpoint, why = _auto_weights(name, tags, weights_dir, network_timeout)
        if checkpoint is None:
            return Weights(
                None,
                fingerprint=random.fingerprint,
                warning=RANDOM_WEIGHTS_WARNING.format(name=name, why=why),
            )
        return Weights(checkpoint, open_clip.get_pretrained_cfg(name, tag), tag, f"{name}/{tag}")
    if pretrained in tags:
        cfg = open_clip.get_pretrained_cfg(name, pretrained)
        checkpoint = _download(cfg, weights_dir, name, pretrained, network_timeout)
        return Weights(checkpoint, cfg, pretrained, f"{name}/{pretrained}")
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


def check_hub(name: str, timeout: float) -> None:
    """Raise WeightsError when hub model ``name`` cannot be fetched (the model hub does not answer)."""
    if not network_available(timeout):
        raise WeightsError(
            f"{name} cannot be fetched: the model hub cannot be reached. Download the repository elsewhere "
            "and pass its weights file with --pretrained PATH and the matching architecture name."
        )


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


def _auto_weights(name: str, tags: list[str], weights_dir, timeout: float) -> tuple[str, Path | None, str]:
    """Pick real weights for ``auto``: cached first, then a download if the network answers."""
    if not tags:
        return "", None, "this architecture has no published weights"
    ordered = [t for t in _AUTO_PREFERENCE if t in tags] + [t for t in tags if t not in _AUTO_PREFERENCE]
    for tag in ordered:
        cached = _cached_file(open_clip.get_pretrained_cfg(name, tag), weights_dir)
        if cached is not None:
            return tag, cached, ""
    if not network_available(timeout):
        return "", None, "no cached weights and the model hub cannot be reached"
    tag = ordered[0]
    try:
        return tag, _download(open_clip.get_pretrained_cfg(name, tag), weights_dir, name, tag, timeout), ""
    except WeightsError as exc:
        return "", None, str(exc)


def _cached_file(cfg: dict, weights_dir) -> Path | None:
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
        found = try_to_load_from_cache(repo_id=repo, filename=fname, cache_dir=weights_dir)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _download(cfg: dict, weights_dir, name: str, tag: str, timeout: float) -> Path:
    cached = _cached_file(cfg, weights_dir)
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
        return Path(open_clip.download_pretrained(cfg, cache_dir=weights_dir))
    except Exception as exc:
        raise WeightsError(f"download of {name}/{tag} failed: {exc}") from exc


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
