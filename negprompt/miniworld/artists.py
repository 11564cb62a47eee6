"""The artists of mini-world v2: each draws a concept once, as an RGBA glyph on a transparent canvas.

=========  ======================================  =========  =====================================
artist     source                                  style      drawing
=========  ======================================  =========  =====================================
noto       Debian fonts-noto-color-emoji           emoji      colour bitmap font, Pillow at 109 px
twemoji    npm emoji-datasource-twitter (64 px)    drawing    flat colour PNG files
symbola    Debian fonts-symbola                    outline    black monochrome outline font, 96 px
clipart    Debian openclipart-svg (opt-in)         clip art   SVG files, up to 3 per concept
=========  ======================================  =========  =====================================

``clipart`` is not one of :data:`ARTISTS`: only a pretraining recipe that asks for it draws it
(:data:`OPT_IN`, :mod:`.clipart`), so the benchmark folders, the ID and OOD sets and every existing
picture stay as they are. It may have several drawings of a concept (:func:`drawings`).

An artist that has no drawing of a concept returns None (Symbola has no ZWJ sequences, flags or
keycaps; a font's missing glyph is detected, never drawn as a box). Glyphs are cropped to their
visible pixels and padded to a square; :mod:`.augment` places them on backgrounds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import assets, clipart
from .emoji import Concept, load_hierarchy
from .lexicon import WordNet
from .sources import MiniWorldDataError

GLYPH = 96
"""Side of the square a glyph is stored at (pixels)."""
_MISSING = "\U0010fffd"  # a private-use code point no font here draws: its glyph is the font's box


@dataclass(frozen=True)
class ArtistInfo:
    """An artist's name, the style word of its captions and where its drawings come from."""

    name: str
    style: str
    source: str


ARTISTS: dict[str, ArtistInfo] = {
    "noto": ArtistInfo("noto", "emoji", "Debian fonts-noto-color-emoji"),
    "twemoji": ArtistInfo("twemoji", "drawing", "npm emoji-datasource-twitter"),
    "symbola": ArtistInfo("symbola", "outline", "Debian fonts-symbola"),
}
"""Every artist; the style word is what its captions call its pictures."""
SEED_IDS: dict[str, int] = {name: i for i, name in enumerate(ARTISTS)}
"""Each artist's place in its pictures' seeds (:mod:`.world_v2`), fixed when this module loads, so that
a picture never depends on the order ``ARTISTS`` happens to have later."""
OPT_IN: dict[str, ArtistInfo] = {"clipart": ArtistInfo("clipart", "clip art", "Debian openclipart-svg")}
"""Drawing sources only a pretraining recipe that names them uses; never in ``ARTISTS``."""
OPT_IN_SEED_IDS: dict[str, int] = {"clipart": 3}
"""Their places in their pictures' seeds, after the three artists' (which never change)."""


def info(artist: str) -> ArtistInfo:
    """The artist's (or opt-in source's) name, style word and source."""
    found = ARTISTS.get(artist) or OPT_IN.get(artist)
    if found is None:
        raise ValueError(f"unknown artist {artist!r}; choose one of {sorted(set(ARTISTS) | set(OPT_IN))}")
    return found


def seed_id(artist: str) -> int:
    """The artist's fixed place in its pictures' seeds."""
    return (SEED_IDS | OPT_IN_SEED_IDS)[artist]


def _square(image: Image.Image) -> Image.Image | None:
    """Crop RGBA to its visible pixels, pad to a square, resize to GLYPH × GLYPH; None when empty."""
    box = image.getchannel("A").getbbox()
    if box is None:
        return None
    image = image.crop(box)
    side = max(image.size)
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas.resize((GLYPH, GLYPH), Image.LANCZOS)


@functools.lru_cache(maxsize=4)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(path, size)
    except OSError as exc:
        raise MiniWorldDataError(
            f"{path} is not a readable font ({exc}); reinstall it: sudo apt-get install --reinstall "
            f"{'fonts-noto-color-emoji' if 'Noto' in path else 'fonts-symbola'}"
        ) from exc


def draw_noto(concept: Concept) -> Image.Image | None:
    """Noto Color Emoji's drawing (the font only has bitmaps at 109 px), or None when it has none."""
    font = _font(str(assets.DEBIAN["noto"].require()), 109)
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), concept.text, font=font)
    if right - left > 1.3 * max(bottom - top, 1):  # an unsupported sequence falls apart into glyphs
        return None
    image = Image.new("RGBA", (right + 8, bottom + 8), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((4, 4), concept.text, font=font, embedded_color=True)
    return _square(image)


def _symbol(concept: Concept) -> str | None:
    cps = [c for c in concept.codepoints if c != 0xFE0F]
    return chr(cps[0]) if len(cps) == 1 else None


def draw_symbola(concept: Concept) -> Image.Image | None:
    """Symbola's black outline of a single-code-point emoji, or None (sequence or missing glyph)."""
    char = _symbol(concept)
    if char is None:
        return None
    font = _font(str(assets.DEBIAN["symbola"].require()), 96)
    mask = font.getmask(char)
    box = font.getmask(_MISSING)
    if mask.size == box.size and bytes(mask) == bytes(box):
        return None
    left, top, right, bottom = font.getbbox(char)
    alpha = Image.new("L", (right + 8, bottom + 8), 0)
    ImageDraw.Draw(alpha).text((4, 4), char, font=font, fill=255)
    image = Image.new("RGBA", alpha.size, (0, 0, 0, 255))
    image.putalpha(alpha)
    return _square(image)


def draw_twemoji(concept: Concept, folder: Path | None = None) -> Image.Image | None:
    """Twemoji's PNG of the concept (with or without U+FE0F in the file name), or None."""
    folder = folder if folder is not None else assets.npm_folder(assets.NPM["twemoji"])
    names = [concept.key, "-".join(f"{c:x}" for c in concept.codepoints if c != 0xFE0F)]
    for name in names:
        path = folder / f"{name}.png"
        if path.is_file():
            try:
                with Image.open(path) as im:
                    return _square(im.convert("RGBA"))
            except OSError as exc:
                raise MiniWorldDataError(
                    f"{path} is damaged ({exc}); delete {folder} and run `{assets.PREPARE_COMMAND}`"
                ) from exc
    return None


@functools.lru_cache(maxsize=2)
def _clipart_index(folder: str) -> dict[str, tuple[Path, ...]]:
    return clipart.index(load_hierarchy().concepts, folder, WordNet())


def draw_clipart(concept: Concept, folder: Path | None = None) -> tuple[Image.Image, ...]:
    """Every clip-art drawing of the concept (:mod:`.clipart`: at most 3; none for most concepts)."""
    folder = folder if folder is not None else assets.DEBIAN["openclipart"].require()
    files = _clipart_index(str(folder)).get(concept.name, ())
    return tuple(g for f in files if (im := clipart.render(f)) is not None and (g := _square(im)) is not None)


DRAW = {"noto": draw_noto, "twemoji": draw_twemoji, "symbola": draw_symbola, "clipart": draw_clipart}
"""Each artist's drawing function: an image, None, or (an opt-in source) a tuple of images."""


_SOURCE = {
    draw_noto: lambda: assets.DEBIAN["noto"].require(),
    draw_twemoji: lambda: assets.npm_folder(assets.NPM["twemoji"]),
    draw_symbola: lambda: assets.DEBIAN["symbola"].require(),
    draw_clipart: lambda: assets.DEBIAN["openclipart"].require(),
}
"""What each drawing function reads (a drawer put in ``DRAW`` in its place reads nothing of these)."""


def require(artist: str) -> None:
    """Check that the artist's drawings are at hand before any picture is drawn: MiniWorldDataError
    naming the package and the command that installs it otherwise."""
    check = _SOURCE.get(DRAW[artist])
    if check is not None:
        check()


def glyph(artist: str, concept: Concept) -> np.ndarray | None:
    """The artist's (first) drawing as uint8 RGBA ``[GLYPH, GLYPH, 4]``, or None when it has none (cached)."""
    found = drawings(artist, concept)
    return found[0] if found else None


def drawings(artist: str, concept: Concept) -> tuple[np.ndarray, ...]:
    """Every drawing the artist has of the concept, uint8 RGBA ``[GLYPH, GLYPH, 4]`` each (one at most
    for the three artists, up to 3 clip-art drawings; cached)."""
    if artist not in DRAW:
        raise ValueError(f"unknown artist {artist!r}; choose one of {sorted(DRAW)}")
    return _glyph(artist, concept)


@functools.lru_cache(maxsize=8192)
def _glyph(artist: str, concept: Concept) -> tuple[np.ndarray, ...]:
    drawn = DRAW[artist](concept)
    images = drawn if isinstance(drawn, tuple) else (drawn,)
    return tuple(np.asarray(im, dtype=np.uint8) for im in images if im is not None)


def coverage(artist: str, concepts: tuple[Concept, ...]) -> tuple[Concept, ...]:
    """The concepts the artist has a drawing of."""
    return tuple(c for c in concepts if glyph(artist, c) is not None)
