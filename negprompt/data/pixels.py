"""Decoding images to 8-bit RGB the same way everywhere: 16-bit and float images scaled, not clipped.

PIL's ``convert("RGB")`` clips a 16-bit grey image (mode ``I;16`` / ``I``) or a float image (mode
``F``) to 0–255, so nearly every pixel becomes white. `to_rgb` scales them instead:

- 16-bit (``I;16*``, or ``I`` with values in [0, 65535]): ``v8 = round(v16 / 257)``;
- float (``F``) with finite values in [0, 1]: ``v8 = round(255 · v)``;

and refuses (``ValueError`` naming the range) integer or float images outside those ranges, where
no scale can be guessed. `open_rgb` also decodes a large JPEG at reduced size (``draft``) when a
display size is given.
"""

from __future__ import annotations

import os

import numpy as np

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def to_rgb(im, name: str | os.PathLike = "image"):
    """An 8-bit RGB copy of the PIL image ``im`` (see the module docstring for the scaling).

    Raises:
        ValueError: an integer or float image whose values fit no known range (named with ``name``).
    """
    from PIL import Image

    if im.mode in _SIXTEEN_BIT or im.mode == "I":
        values = np.asarray(im, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(
                f"{name}: {im.mode} image with values {values.min()}..{values.max()}, outside 16-bit "
                "0..65535; convert it to 8-bit or 16-bit first"
            )
        grey = np.rint(values / 257.0).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if im.mode == "F":
        values = np.asarray(im, dtype=np.float64)
        if values.size and (not np.isfinite(values).all() or values.min() < 0 or values.max() > 1):
            raise ValueError(
                f"{name}: float image with values outside [0, 1] (or not finite); convert it to an "
                "8-bit image with the scale you want first"
            )
        grey = np.rint(values * 255.0).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return im.convert("RGB")


def open_rgb(path: str | os.PathLike, size: int | None = None):
    """Open ``path`` as an 8-bit RGB image; with ``size``, decode a JPEG at about that size.

    Raises:
        OSError: missing or unreadable file. ValueError: see `to_rgb`. PIL's
        ``DecompressionBombError``: more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` allows.
    """
    from PIL import Image

    with Image.open(path) as im:
        if size is not None and im.format == "JPEG":
            im.draft("RGB", (size, size))  # the decoder scales by 1/2, 1/4 or 1/8: far less memory
        im.load()
        if size is not None and max(im.size) > 2 * size:
            factor = max(1, min(im.size) // size // 2)
            if factor > 1 and im.mode in ("RGB", "RGBA", "L", "LA"):
                im = im.reduce(factor)
        return to_rgb(im, path)
