"""Defaults that depend on the machine or the environment, resolved in this one place.

- the device: ``auto`` means ``cuda`` when PyTorch sees a GPU, else ``cpu``;
- the feature cache: ``$NEGPROMPT_CACHE`` or ``~/.cache/negprompt/features`` (``~`` expanded);
- the data root of the offline benchmarks (demo, mini-world): ``~/.cache/negprompt/data``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEMO_DATA_ROOT = "~/.cache/negprompt/data"
"""Data root of the demo and mini-world presets (their images are written there on first use)."""


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` (or None) as ``cuda`` when a GPU is visible, else ``cpu``; any other name unchanged."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
"""Device names a run accepts: ``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``."""


def check_device_name(device: str | None) -> None:
    """Raise `ValueError` unless ``device`` is a device name a run accepts (`DEVICE_PATTERN`)."""
    if device is not None and not DEVICE_PATTERN.match(str(device)):
        raise ValueError(f"device {device!r} is not a device name; use auto, cpu, cuda, cuda:N or mps")


def check_device_present(device: str | None) -> None:
    """Raise `ValueError` when ``device`` names hardware this machine does not have.

    ``cuda`` / ``cuda:N`` need PyTorch to see a GPU (and N below the number of GPUs), ``mps`` needs
    Apple's Metal backend; ``auto`` and ``cpu`` always pass.
    """
    check_device_name(device)
    if device in (None, "auto", "cpu"):
        return
    import torch

    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device}: no CUDA device here (PyTorch sees no GPU); use --device cpu, or "
                "--device auto to take a GPU when one is present"
            )
        index, count = int(str(device).partition(":")[2] or 0), torch.cuda.device_count()
        if index >= count:
            raise ValueError(
                f"--device {device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: Apple's Metal backend is not available here; use --device cpu")


def feature_cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The feature cache folder: ``path`` when given, else ``$NEGPROMPT_CACHE``, else
    ``~/.cache/negprompt/features``; ``~`` is expanded in each."""
    if path is not None and os.fspath(path) != "":
        return Path(path).expanduser()
    env = os.environ.get("NEGPROMPT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "negprompt" / "features"
