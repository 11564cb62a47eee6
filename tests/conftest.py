"""Shared fixtures: the tiny random CLIP, generated image folders, no network."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

# Tests never reach the network: the model hub is "offline" for every test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_backbone():
    """The tiny registered open_clip architecture with random weights (seeded)."""
    import torch

    from negprompt.backbone import TINY_MODEL, load_backbone

    torch.manual_seed(0)
    return load_backbone(TINY_MODEL, "none")


def write_images(
    folder: Path, n: int, *, seed: int = 0, size: int = 24, color=None, fmt: str = "PNG"
) -> list[Path]:
    """Write ``n`` small random images into ``folder`` (created); returns their paths."""
    from PIL import Image

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    out = []
    for i in range(n):
        base = color or (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        im = Image.new("RGB", (size, size), base)
        for _ in range(8):
            x, y = rng.randrange(size), rng.randrange(size)
            im.putpixel((x, y), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
        path = folder / f"img_{seed}_{i:03d}.{ext}"
        im.save(path, fmt)
        out.append(path)
    return out


@pytest.fixture
def image_tree(tmp_path):
    """A class-folder image tree ``root/<class>/*.png`` (3 classes x 5) and a flat OOD folder."""
    root = tmp_path / "images"
    for k, name in enumerate(["cat", "dog", "bird"]):
        write_images(root / "id" / name, 5, seed=k, color=((80 * k) % 256, 40, 200 - 60 * k))
    write_images(root / "ood", 6, seed=9)
    return root


def unit_features(n_classes: int, per_class: int, seed: int, dim: int = 64):
    """Random unit-length features ``[C·per_class, dim]`` and their labels ``0 … C−1`` repeated."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n_classes).repeat(per_class)
    return torch.nn.functional.normalize(torch.randn(len(y), dim, generator=gen), dim=-1), y


@pytest.fixture(autouse=True)
def keep_the_main_module():
    """Streamlit's AppTest leaves ``sys.modules["__main__"]`` pointing at the app script; a later
    test that spawns processes (torch.multiprocessing) would then run that script in every child.
    Put the real main module back after each test."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


def run_together(target, *args, n: int = 2, timeout: float = 60) -> list[int]:
    """Run ``target(*args, barrier)`` in ``n`` forked processes released at once by a barrier;
    returns their exit codes."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=target, args=(*args, barrier)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    return [p.exitcode for p in procs]
