"""Generated images of the mini-world: coloured shapes and textures, 32×32 RGB, seeded.

Shapes are drawn at twice the size and averaged down (soft edges), with jittered colour, position and
size, on a black, white, gray or noisy background. Textures are periodic patterns with a random
orientation, scale and pair of colours, or crops of three photographed surfaces (brick, grass,
gravel) shipped as package data; the top half of each photograph feeds pretraining and the bottom
half evaluation, so held-out texture crops never overlap what the model saw.
"""

from __future__ import annotations

import functools
import io
from importlib import resources

import numpy as np

from .concepts import BACKGROUNDS, COLOURS

SIZE = 32
_SS = 2  # supersampling factor
_N = SIZE * _SS
_YY, _XX = np.mgrid[0:_N, 0:_N].astype(np.float32) / _SS + 0.5 / _SS


def _shape_mask(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    dx, dy = _XX - cx, _YY - cy
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy  # rotated coordinates
    if shape == "circle":
        return np.hypot(dx, dy) <= r
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8 * r
    if shape == "triangle":  # equilateral, centred, pointing along -v
        k = np.sqrt(3.0)
        return (v <= 0.5 * r) & (k * u - v <= r) & (-k * u - v <= r)
    if shape == "star":
        theta = np.arctan2(v, u)
        radius = r * (0.42 + 0.58 * ((np.cos(5 * theta) + 1) / 2) ** 3)
        return np.hypot(u, v) <= radius
    if shape == "cross":
        w = 0.3 * r
        return ((np.abs(u) <= w) & (np.abs(v) <= r)) | ((np.abs(v) <= w) & (np.abs(u) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def _down(a: np.ndarray) -> np.ndarray:
    """Average _SS×_SS blocks: [_N, _N, ...] -> [SIZE, SIZE, ...]."""
    return a.reshape(SIZE, _SS, SIZE, _SS, *a.shape[2:]).mean(axis=(1, 3))


def _background(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "black":
        base = rng.uniform(0, 35)
    elif kind == "white":
        base = rng.uniform(220, 255)
    elif kind == "gray":
        base = rng.uniform(95, 160)
    elif kind == "noisy":
        return np.clip(rng.normal(rng.uniform(70, 180), 40, (SIZE, SIZE, 1)), 0, 255).repeat(3, axis=2)
    else:
        raise ValueError(f"unknown background {kind!r}; choose one of {BACKGROUNDS}")
    return np.full((SIZE, SIZE, 3), base, dtype=np.float64)


def draw_shape(
    colour: str, shape: str, fill: str, size: str, background: str, rng: np.random.Generator
) -> np.ndarray:
    """One shape image, uint8 ``[32, 32, 3]``."""
    r = rng.uniform(5.0, 7.0) if size == "small" else rng.uniform(10.0, 13.0)
    margin = r + 1.5
    cx, cy = rng.uniform(margin, SIZE - margin, size=2)
    angle = rng.uniform(-0.35, 0.35)
    outer = _shape_mask(shape, cx, cy, r, angle)
    if fill == "outlined":
        thickness = 2.0 if size == "large" else 1.5
        inner = _shape_mask(shape, cx, cy, max(r - thickness * (1.6 if shape == "star" else 1.0), 0.5), angle)
        outer = outer & ~inner
    alpha = _down(outer.astype(np.float64))[..., None]
    rgb = np.clip(np.asarray(COLOURS[colour], dtype=np.float64) + rng.normal(0, 12, 3), 0, 255)
    image = _background(background, rng) * (1 - alpha) + rgb * alpha
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _photos() -> dict[str, np.ndarray]:
    data = resources.files("negprompt.miniworld").joinpath("resources", "texture_photos.npz").read_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _photo_crop(name: str, part: str, rng: np.random.Generator) -> np.ndarray:
    photo = _photos()[name]  # [H, W] uint8
    h = photo.shape[0] // 2
    rows = photo[:h] if part == "pretrain" else photo[h:]
    side = int(rng.integers(32, 65))
    y = int(rng.integers(0, rows.shape[0] - side + 1))
    x = int(rng.integers(0, rows.shape[1] - side + 1))
    crop = rows[y : y + side, x : x + side].astype(np.float64)
    idx = (np.arange(SIZE) + 0.5) * side / SIZE
    i = np.clip(idx.astype(int), 0, side - 1)
    small = crop[np.ix_(i, i)]
    tint = rng.uniform(0.85, 1.15, 3)
    return np.clip(np.rint(small[..., None] * tint), 0, 255).astype(np.uint8)


def _pattern(name: str, rng: np.random.Generator) -> np.ndarray:
    """A binary-ish pattern in [0, 1], ``[32, 32]``."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    theta = rng.uniform(0, np.pi)
    u = x * np.cos(theta) + y * np.sin(theta)
    v = -x * np.sin(theta) + y * np.cos(theta)
    period = rng.uniform(5.0, 10.0)
    phase = rng.uniform(0, period)
    if name == "striped":
        return (np.sin(2 * np.pi * (u + phase) / period) > 0).astype(float)
    if name == "checkered":
        return ((np.floor((u + phase) / period) + np.floor((v + phase) / period)) % 2).astype(float)
    if name == "dotted":
        cu, cv = (u + phase) % period - period / 2, (v + phase) % period - period / 2
        return (np.hypot(cu, cv) < period * rng.uniform(0.2, 0.32)).astype(float)
    if name == "zigzag":
        tri = np.abs(((v + phase) / period) % 2 - 1) * period * rng.uniform(0.6, 1.2)
        return (np.sin(2 * np.pi * (u + tri) / period) > 0).astype(float)
    if name == "wavy":
        wave = rng.uniform(1.5, 3.5) * np.sin(2 * np.pi * v / rng.uniform(10, 20))
        return (np.sin(2 * np.pi * (u + wave + phase) / period) > 0).astype(float)
    if name == "grid":
        width = rng.uniform(1.0, 2.0)
        return (((u + phase) % period < width) | ((v + phase) % period < width)).astype(float)
    if name == "speckled":
        return (rng.random((SIZE, SIZE)) < rng.uniform(0.15, 0.4)).astype(float)
    raise ValueError(f"unknown pattern {name!r}")


def draw_texture(name: str, rng: np.random.Generator, part: str = "pretrain") -> np.ndarray:
    """One texture image, uint8 ``[32, 32, 3]`` (photographed textures: a crop of ``part``)."""
    if name in ("brick", "grass", "gravel"):
        return _photo_crop(name, part, rng)
    p = _pattern(name, rng)[..., None]
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    while np.abs(a - b).sum() < 180:  # keep the two colours apart so the pattern is visible
        b = rng.uniform(0, 255, 3)
    image = a * p + b * (1 - p) + rng.normal(0, 6, (SIZE, SIZE, 1))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
