"""Portable learned prompts: ``<path>.safetensors`` (the contexts) + ``<path>.json`` (what they fit).

The tensors file holds ``pos_ctx`` (``[L, W]`` or ``[C, L, W]``) and ``neg_ctx`` (``[M, L, W]``). The
metadata names the backbone (architecture and weights) the contexts were learned on, their shape,
their initialisation and the class names used in training. Shared contexts pair with any class-name
list (open vocabulary): ``learner_from_file(path, backbone).class_names(new_names)``.

Both files are written atomically. The tensors file's own metadata holds ``sha256``, a checksum of
its tensors (name, dtype, shape and bytes of each, in name order), checked on load: a truncated
file or a flipped byte is an error naming the file, never silently different contexts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from negprompt.backbone import Backbone
from negprompt.io import atomic_write, clean_stale_temps
from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder

FORMAT = 1
_SUFFIXES = (".safetensors", ".json")


def prompt_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<path>.safetensors, <path>.json)``; a given ``.safetensors``/``.json`` suffix is dropped first."""
    path = Path(path)
    if path.suffix in _SUFFIXES:
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def tensors_checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes, in name order (hex)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path``, checked against the checksum in its metadata (when it has one)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            saved = (fh.metadata() or {}).get("sha256")
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as err:  # SafetensorError, OSError, …: truncated or not a safetensors file
        raise ValueError(
            f"prompts file {path} is damaged ({type(err).__name__}: {err}); train again or restore it"
        ) from err
    if saved is not None and tensors_checksum(state) != saved:
        raise ValueError(
            f"prompts file {path} is damaged: its tensors do not match the checksum it was saved with; "
            "train again or restore it"
        )
    return state


def save_prompts(
    path: str | os.PathLike,
    learner: PromptLearner,
    backbone: Backbone,
    class_names: Sequence[str],
    extra: dict | None = None,
) -> tuple[Path, Path]:
    """Write a learner's contexts and their metadata atomically.

    Args:
        path: file path without suffix (``run/prompts/negprompt``).
        learner: the contexts.
        backbone: the backbone they were learned on.
        class_names: the class names used in training (recorded, not needed to load).
        extra: JSON-ready facts to record (stage, selected epoch, training config, …).

    Returns:
        The two files written.
    """
    tensors_path, meta_path = prompt_paths(path)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(tensors_path.parent, tensors_path.stem)  # left by a killed writer
    tensors = {
        "pos_ctx": learner.pos_ctx.detach().float().cpu().contiguous(),
        "neg_ctx": learner.neg_ctx.detach().float().cpu().contiguous(),
    }
    from negprompt import __version__

    cfg = learner.config
    meta = {
        "format": FORMAT,
        "negprompt": __version__,
        "backbone": {
            "name": backbone.name,
            "weights": backbone.weights,
            "random_weights": backbone.random_weights,
        },
        "n_ctx": cfg.n_ctx,
        "n_neg": int(learner.neg_ctx.shape[0]),
        "width": int(learner.neg_ctx.shape[-1]),
        "class_specific": cfg.class_specific,
        "init": cfg.init,
        "neg_noise": cfg.neg_noise,
        "class_names": [str(n) for n in class_names],
        "extra": extra or {},
    }
    text = json.dumps(meta, indent=2, ensure_ascii=False)
    header = {"format": str(FORMAT), "sha256": tensors_checksum(tensors)}
    atomic_write(tensors_path, lambda tmp: save_file(tensors, str(tmp), metadata=header))
    atomic_write(meta_path, text)
    return tensors_path, meta_path


def _weights_match(saved: str, current: str) -> bool:
    if saved == current:
        return True
    # a checkpoint file may have moved: compare file names
    looks_like_file = any(s in saved for s in "/\\") and any(s in current for s in "/\\")
    return looks_like_file and Path(saved).name == Path(current).name


def check_backbone(meta: dict, backbone: Backbone, path: str | os.PathLike = "") -> None:
    """Raise ValueError naming both backbones when the prompts were learned on another one."""
    saved = meta["backbone"]
    if saved["name"] != backbone.name or not _weights_match(saved["weights"], backbone.weights):
        raise ValueError(
            f"the prompts {path} were learned on {saved['name']} with weights {saved['weights']!r}, "
            f"but the backbone is {backbone.name} with weights {backbone.weights!r}; contexts only fit the "
            "model they were learned on. Load that backbone."
        )


def load_prompts(path: str | os.PathLike, backbone: Backbone | None = None) -> tuple[dict, dict]:
    """Read a prompts file.

    Args:
        path: with or without suffix.
        backbone: when given, check that the prompts were learned on it.

    Returns:
        ``(state, meta)``: ``state = {"pos_ctx", "neg_ctx"}`` float32 tensors (a PromptLearner
        state dict) and the metadata.

    Raises:
        FileNotFoundError: a file is missing. ValueError: a damaged file (named), format or
        backbone mismatch.
    """
    tensors_path, meta_path = prompt_paths(path)
    for p in (tensors_path, meta_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"prompts file {p} not found (a prompts file is a .safetensors + .json pair)"
            )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"prompts metadata {meta_path} is damaged (not valid JSON: {err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        meta = meta if isinstance(meta, dict) else {}
        raise ValueError(f"{meta_path} has format {meta.get('format')!r}; this version reads format {FORMAT}")
    state = _read_tensors(tensors_path)
    missing = {"pos_ctx", "neg_ctx"} - set(state)
    if missing:
        raise ValueError(f"{tensors_path} lacks {sorted(missing)}")
    if backbone is not None:
        check_backbone(meta, backbone, tensors_path.with_suffix(""))
    return state, meta


def learner_from_file(path: str | os.PathLike, backbone: Backbone) -> PromptLearner:
    """A :class:`PromptLearner` holding the saved contexts, on ``backbone`` (checked to match).

    Pair it with any class names: ``learner.class_names(names)`` (shared contexts only). The
    contexts are returned frozen (``requires_grad`` off); training functions switch on what they train.

    Raises:
        ValueError: another backbone, or a context width that does not fit its text tower.
    """
    state, meta = load_prompts(path, backbone)
    encoder = TextEncoder(backbone)
    width = int(state["neg_ctx"].shape[-1])
    if width != encoder.width:
        raise ValueError(
            f"the prompts {path} have context width {width}, but {backbone.name}'s text tower has width "
            f"{encoder.width}"
        )
    pos = state["pos_ctx"]
    config = PromptConfig(
        n_ctx=int(meta["n_ctx"]),
        init="",
        class_specific=bool(meta["class_specific"]),
        n_neg=int(meta["n_neg"]),
        neg_noise=float(meta.get("neg_noise", PromptConfig.neg_noise)),
    )
    learner = PromptLearner(encoder, config, n_classes=pos.shape[0] if pos.dim() == 3 else None)
    learner.load_state_dict({k: v.to(backbone.device) for k, v in state.items()})
    learner.config = PromptConfig(**{**asdict(config), "init": meta.get("init", "")})
    learner.requires_grad_(False)
    return learner
