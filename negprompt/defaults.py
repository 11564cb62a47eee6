"""Defaults that depend on the machine or the environment, resolved in this one place.

- the device: ``auto`` means ``cuda`` when PyTorch sees a GPU, else ``cpu``;
- the feature cache: ``$NEGPROMPT_CACHE`` or ``~/.cache/negprompt/features`` (``~`` expanded);
- the data root of the offline benchmarks (demo, mini-world): ``~/.cache/negprompt/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

DEMO_DATA_ROOT = "~/.cache/negprompt/data"
"""Data root of the demo and mini-world presets (their images are written there on first use)."""


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` (or None) as ``cuda`` when a GPU is visible, else ``cpu``; any other name unchanged."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def feature_cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The feature cache folder: ``path`` when given, else ``$NEGPROMPT_CACHE``, else
    ``~/.cache/negprompt/features``; ``~`` is expanded in each."""
    if path is not None and os.fspath(path) != "":
        return Path(path).expanduser()
    env = os.environ.get("NEGPROMPT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "negprompt" / "features"
