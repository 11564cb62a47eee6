"""What drove one image's GL-MCM or NegLabel decision: its deciding local region, its closest negative label.

A run records, per image and method, ``<method>.best_region`` (the patch whose class distribution
peaked highest, GL-MCM / local MCM) and ``<method>.top_negative`` (the index of the closest mined
negative label, NegLabel); its ``config.json`` holds the patch grid (``experiment.local_grid``) and
the negative labels (``experiment.neglabel.words``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from negprompt.viz.images import _png

__all__ = ["decision_evidence", "region_box", "region_png"]


def region_box(width: int, height: int, patch: int, grid: int) -> tuple[float, float, float, float]:
    """Pixel box ``(left, top, right, bottom)`` of a ViT patch in the original image.

    CLIP's preprocessing resizes the shorter side and crops the centre square, which the ViT cuts
    into grid × grid patches numbered row by row; patch p = (r, c) = divmod(p, grid) covers
    [x0 + c·s/g, x0 + (c+1)·s/g) × [y0 + r·s/g, …) with s = min(width, height) and (x0, y0) the
    corner of the centre square.
    """
    if not 0 <= patch < grid * grid:
        raise ValueError(f"patch {patch} is outside a {grid} × {grid} grid")
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    row, col = divmod(int(patch), grid)
    cell = side / grid
    return (x0 + col * cell, y0 + row * cell, x0 + (col + 1) * cell, y0 + (row + 1) * cell)


def region_png(path: str | Path, patch: int, grid: int, size: int = 320) -> bytes:
    """The image with its patch ``patch`` outlined in red, at most ``size`` pixels a side (PNG bytes)."""
    from PIL import Image, ImageDraw

    with Image.open(path) as im:
        img = im.convert("RGB")
    box = region_box(img.width, img.height, patch, grid)
    scale = size / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    ImageDraw.Draw(img).rectangle([v * scale for v in box], outline=(230, 30, 30), width=3)
    return _png(img)


def decision_evidence(item: pd.Series, method: str, experiment: dict) -> list[str]:
    """Markdown lines on what drove ``method``'s decision for one row of a run's scores table.

    Args:
        item: one row of the scores table.
        method: the method of the score column shown.
        experiment: the run's ``config["experiment"]`` (grid and negative labels).

    Returns:
        One line per kind of evidence the run holds for this method (none: an empty list).
    """
    lines = []
    region = item.get(f"{method}.best_region")
    grid = experiment.get("local_grid")
    if region is not None and pd.notna(region) and grid:
        row, col = divmod(int(region), int(grid))
        lines.append(
            f"**Local region** (GL-MCM): patch {int(region)}, row {row + 1} and column {col + 1} of the "
            f"{grid} × {grid} grid, matched an ID class best."
        )
    negative = item.get(f"{method}.top_negative")
    words = (experiment.get("neglabel") or {}).get("words") or []
    if negative is not None and pd.notna(negative) and 0 <= int(negative) < len(words):
        lines.append(f"**Closest negative label** (NegLabel): *{words[int(negative)]}*.")
    return lines
