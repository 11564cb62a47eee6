"""Placing a glyph in a picture: background, scale, position, rotation, colour, clutter, occlusion.

One picture is composed at twice the model's input size and shrunk with a box filter (soft edges):

1. background: a plain light or dark colour, a vertical gradient, noise, or one of v1's textures
   (:func:`negprompt.miniworld.render.draw_texture`, pretraining or evaluation half), each equally
   likely; outlines get a paper-like (lightened) background so their ink stays visible;
2. clutter: with probability ``clutter_p`` one or two other glyphs at 20–30% of the side, placed
   first (behind the subject);
3. the subject: side ``U(scale)`` of the picture, rotated by ``U(±rotation)`` degrees, its centre
   anywhere that keeps at least 80% of it inside; outlines are inked dark on light backgrounds and
   light on dark ones;
4. colour: brightness and contrast ``× U(1 ± colour)``; never a hue shift (many concepts differ only
   in colour: red and blue hearts);
5. occlusion: with probability ``occlude_p`` a rectangle of background or grey hides up to 30% of
   the subject's box.

Every random number comes from the ``numpy.random.Generator`` passed in, so a picture is a pure
function of (glyph, seed, settings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import concepts as C
from .render import draw_texture

BACKGROUND_KINDS = ("light", "dark", "gradient", "noise", "texture")


@dataclass(frozen=True)
class Augment:
    """Augmentation settings (ranges and probabilities; see the module docstring)."""

    size: int = 32
    scale: tuple[float, float] = (0.55, 0.95)
    rotation: float = 20.0
    colour: float = 0.15
    clutter_p: float = 0.3
    occlude_p: float = 0.25
    texture_part: str = "pretrain"


def background(kind: str, size: int, rng: np.random.Generator, part: str = "pretrain") -> np.ndarray:
    """A background, float ``[size, size, 3]`` in 0..255."""
    if kind == "light":
        return np.broadcast_to(rng.uniform(170, 255, 3), (size, size, 3)).copy()
    if kind == "dark":
        return np.broadcast_to(rng.uniform(0, 90, 3), (size, size, 3)).copy()
    if kind == "gradient":
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = np.linspace(0, 1, size)[:, None, None]
        return np.broadcast_to(a * (1 - t) + b * t, (size, size, 3)).copy()
    if kind == "noise":
        return np.clip(rng.normal(rng.uniform(60, 200), 35, (size, size, 3)), 0, 255)
    if kind == "texture":
        tex = draw_texture(C.TEXTURES[int(rng.integers(len(C.TEXTURES)))], rng, part)
        if size != tex.shape[0]:
            tex = np.asarray(Image.fromarray(tex).resize((size, size), Image.BICUBIC))
        return tex.astype(np.float64)
    raise ValueError(f"unknown background {kind!r}; choose one of {BACKGROUND_KINDS}")


def _paste(canvas: np.ndarray, rgba: np.ndarray, side: int, angle: float, cx: float, cy: float) -> tuple:
    """Alpha-blend ``rgba`` resized to ``side`` and rotated by ``angle`` at centre (cx, cy) into
    ``canvas`` (float ``[H, W, 3]``, changed in place); returns the pasted box (x0, y0, x1, y1)."""
    im = Image.fromarray(rgba).resize((max(side, 1), max(side, 1)), Image.LANCZOS)
    if angle:
        im = im.rotate(angle, resample=Image.BICUBIC, expand=True)
    g = np.asarray(im, dtype=np.float64)
    h, w = g.shape[:2]
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    H, W = canvas.shape[:2]
    gx0, gy0 = max(0, -x0), max(0, -y0)
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(W, x0 + w), min(H, y0 + h)
    if cx1 <= cx0 or cy1 <= cy0:
        return (0, 0, 0, 0)
    patch = g[gy0 : gy0 + cy1 - cy0, gx0 : gx0 + cx1 - cx0]
    a = patch[..., 3:4] / 255.0
    canvas[cy0:cy1, cx0:cx1] = canvas[cy0:cy1, cx0:cx1] * (1 - a) + patch[..., :3] * a
    return (cx0, cy0, cx1, cy1)


def _ink(rgba: np.ndarray, bg_mean: float, rng: np.random.Generator) -> np.ndarray:
    """An outline glyph inked dark on a light background and light on a dark one."""
    out = rgba.copy()
    level = rng.uniform(0, 60) if bg_mean >= 128 else rng.uniform(200, 255)
    out[..., :3] = np.clip(level + rng.normal(0, 10, 3), 0, 255).astype(np.uint8)
    return out


def compose(
    subject: np.ndarray,
    rng: np.random.Generator,
    aug: Augment = Augment(),
    *,
    outline: bool = False,
    clutter: tuple[np.ndarray, ...] = (),
    kind: str | None = None,
) -> np.ndarray:
    """One picture of ``subject`` (uint8 RGBA glyph ``[G, G, 4]``): uint8 ``[size, size, 3]``.

    Args:
        subject: the glyph to show.
        rng: the picture's random numbers.
        aug: settings. outline: the glyph is a monochrome outline (inked by contrast, paper background).
        clutter: candidate glyphs for clutter (one or two are drawn when clutter happens).
        kind: the background kind (:data:`BACKGROUND_KINDS`); None draws one.
    """
    big = 2 * aug.size
    if kind is None:
        kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    canvas = background(kind, aug.size, rng, aug.texture_part)
    if outline and kind in ("texture", "noise", "gradient"):
        canvas = 0.35 * canvas + 0.65 * 255.0  # paper: keep the ink readable
    canvas = np.asarray(
        Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).resize((big, big)), np.float64
    )
    bg_mean = float(canvas.mean())
    if clutter and rng.random() < aug.clutter_p:
        for _ in range(int(rng.integers(1, 3))):
            other = clutter[int(rng.integers(len(clutter)))]
            if outline:
                other = _ink(other, bg_mean, rng)
            side = int(big * rng.uniform(0.2, 0.3))
            _paste(canvas, other, side, rng.uniform(-30, 30), *rng.uniform(0, big, 2))
    side = int(round(big * rng.uniform(*aug.scale)))
    slack = 0.5 * big - 0.4 * side
    cx, cy = 0.5 * big + rng.uniform(-slack, slack, 2) if slack > 0 else (0.5 * big, 0.5 * big)
    glyph = _ink(subject, bg_mean, rng) if outline else subject
    box = _paste(canvas, glyph, side, rng.uniform(-aug.rotation, aug.rotation), cx, cy)
    gain = rng.uniform(1 - aug.colour, 1 + aug.colour)
    contrast = rng.uniform(1 - aug.colour, 1 + aug.colour)
    mean = canvas.mean()
    canvas = (canvas - mean) * contrast + mean * gain
    if rng.random() < aug.occlude_p and box[2] > box[0]:
        x0, y0, x1, y1 = box
        w = int((x1 - x0) * rng.uniform(0.25, 0.55))
        h = int((y1 - y0) * rng.uniform(0.25, 0.55))
        ox, oy = int(rng.integers(x0, max(x1 - w, x0 + 1))), int(rng.integers(y0, max(y1 - h, y0 + 1)))
        canvas[oy : oy + h, ox : ox + w] = rng.uniform(60, 200)
    small = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8)).resize(
        (aug.size, aug.size), Image.BOX
    )
    return np.asarray(small, dtype=np.uint8)
