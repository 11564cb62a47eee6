"""Image thumbnails as PNG bytes and captioned HTML galleries, for the dashboard and notebooks.

Nothing is written to disk: thumbnails are encoded in memory and a gallery embeds them as data
URLs, so a notebook that shows one stays self-contained. An image that cannot be read becomes a
grey crossed-out square whose caption says why, instead of stopping the notebook or page.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

MIN_VIEW_PX = 256
"""Images smaller than this (both sides) are enlarged, pixelated, when shown at full size."""


def _png(img) -> bytes:
    buf = BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def placeholder_png(size: int = 160) -> bytes:
    """A grey, crossed-out square shown in place of an image that cannot be read."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (200, 200, 200))
    draw = ImageDraw.Draw(img)
    draw.line((0, 0, size, size), fill=(150, 150, 150), width=3)
    draw.line((0, size, size, 0), fill=(150, 150, 150), width=3)
    return _png(img)


def thumbnail_png(
    path: str | Path, size: int | None = 160, *, square: bool = False, enlarge: bool = False
) -> bytes:
    """PNG bytes of the image at ``path``, at most ``size`` pixels a side (``None``: full size).

    ``square`` crops to the centre square before scaling, so thumbnails line up in a grid. At full
    size (or with ``enlarge``), an image under :data:`MIN_VIEW_PX` is enlarged by a whole factor with nearest-neighbour
    sampling (a 28-pixel digit becomes visible and keeps its pixels). A large JPEG is decoded at
    about the display size, and 16-bit or float images are scaled to 8 bits
    (`negprompt.data.pixels.open_rgb`). Raises ``OSError`` when the file is missing or not an image,
    ``ValueError`` for pixel values of unknown scale, PIL's ``DecompressionBombError`` for an image
    over PIL's pixel limit.
    """
    from PIL import Image, ImageOps

    from negprompt.data.pixels import open_rgb

    if size is not None and size < 1:
        raise ValueError(f"size must be a positive number of pixels or None, got {size}")
    img = open_rgb(path, size)
    if size is not None:
        if square:
            img = ImageOps.fit(img, (size, size))
        else:
            img.thumbnail((size, size))
    if (size is None or enlarge) and max(img.size) < MIN_VIEW_PX:
        scale = MIN_VIEW_PX // max(img.size)
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return _png(img)


@dataclass(frozen=True)
class Gallery:
    """Captioned thumbnails as one HTML block; Jupyter shows it as such (``_repr_html_``)."""

    html: str
    count: int
    unreadable: int = 0

    def _repr_html_(self) -> str:
        return self.html


def image_gallery(
    paths: Iterable[str | Path], captions: Sequence[str] | None = None, *, size: int = 96
) -> Gallery:
    """Square thumbnails of ``paths`` with ``captions`` (default: file names), in a wrapping row.

    A file that cannot be read is shown as a placeholder captioned with the error, and counted in
    ``Gallery.unreadable``. An empty list gives a short "no images" note.
    """
    paths = [Path(p) for p in paths]
    captions = [p.name for p in paths] if captions is None else [str(c) for c in captions]
    if len(captions) != len(paths):
        raise ValueError(f"{len(paths)} images but {len(captions)} captions; give one caption per image")
    cells, unreadable = [], 0
    for path, caption in zip(paths, captions):
        try:
            png = thumbnail_png(path, size, square=True)
        except Exception as err:  # missing, not an image, too large, unknown pixel scale
            png, unreadable = placeholder_png(size), unreadable + 1
            caption = f"{caption} (unreadable: {getattr(err, 'strerror', None) or err})"
        src = base64.b64encode(png).decode("ascii")
        cells.append(
            f'<figure style="display:inline-block;margin:4px;width:{size + 24}px;text-align:center">'
            f'<img src="data:image/png;base64,{src}" width="{size}" height="{size}" '
            f'alt="{html.escape(path.name)}">'
            f'<figcaption style="font-size:11px">{html.escape(caption)}</figcaption></figure>'
        )
    body = "".join(cells) or "<i>no images</i>"
    return Gallery(html=f"<div>{body}</div>", count=len(cells), unreadable=unreadable)
