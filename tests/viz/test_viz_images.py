"""Thumbnails and captioned galleries of negprompt.viz, on images written by the test."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from negprompt import viz


def _decode(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png))


def _image(path, size=(60, 30), color=(200, 10, 10)):
    Image.new("RGB", size, color).save(path)
    return path


def test_thumbnail_keeps_the_aspect_ratio_and_square_crops(tmp_path):
    path = _image(tmp_path / "wide.png", (60, 30))
    assert _decode(viz.thumbnail_png(path, 20)).size == (20, 10)
    assert _decode(viz.thumbnail_png(path, 20, square=True)).size == (20, 20)
    # a thumbnail never enlarges; full size keeps an image of viewable size as it is
    assert _decode(viz.thumbnail_png(path, 200)).size == (60, 30)
    big = _image(tmp_path / "big.png", (300, 280))
    assert _decode(viz.thumbnail_png(big, None)).size == (300, 280)


def test_full_size_enlarges_tiny_images_by_a_whole_factor_without_blending(tmp_path):
    img = Image.new("L", (28, 28), 0)
    img.putpixel((3, 5), 255)
    img.save(tmp_path / "digit.png")
    shown = _decode(viz.thumbnail_png(tmp_path / "digit.png", None)).convert("L")
    factor = viz.images.MIN_VIEW_PX // 28
    assert shown.size == (28 * factor, 28 * factor)
    # nearest-neighbour: the lit pixel becomes a factor x factor block of exactly 255, nothing else lit
    lit = [(x, y) for x in range(shown.width) for y in range(shown.height) if shown.getpixel((x, y))]
    assert len(lit) == factor * factor and all(shown.getpixel(xy) == 255 for xy in lit)
    assert {x // factor for x, _ in lit} == {3} and {y // factor for _, y in lit} == {5}


def test_thumbnail_of_a_missing_or_broken_file_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        viz.thumbnail_png(tmp_path / "nope.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(OSError):
        viz.thumbnail_png(tmp_path / "broken.png")
    with pytest.raises(ValueError, match="positive"):
        viz.thumbnail_png(_image(tmp_path / "ok.png"), 0)


def test_gallery_embeds_every_image_with_its_escaped_caption(tmp_path):
    paths = [_image(tmp_path / f"{i}.png", color=(i * 40, 0, 0)) for i in range(3)]
    gallery = viz.image_gallery(paths, ["a", "b <script>", "c & d"], size=32)
    assert gallery.count == 3 and gallery.unreadable == 0
    assert gallery._repr_html_() == gallery.html
    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', gallery.html)
    assert len(sources) == 3
    pixels = [_decode(base64.b64decode(s)).convert("RGB") for s in sources]
    assert all(p.size == (32, 32) for p in pixels)
    assert [p.getpixel((16, 16))[0] for p in pixels] == [0, 40, 80]  # in the order given
    assert "b &lt;script&gt;" in gallery.html and "<script>" not in gallery.html
    assert "c &amp; d" in gallery.html


def test_gallery_shows_unreadable_files_as_placeholders_and_counts_them(tmp_path):
    good = _image(tmp_path / "good.png")
    gallery = viz.image_gallery([good, tmp_path / "gone.png"])
    assert gallery.count == 2 and gallery.unreadable == 1
    assert "gone.png (unreadable:" in gallery.html
    assert gallery.html.count("data:image/png;base64,") == 2


def test_gallery_captions_default_to_file_names_and_must_match_in_number(tmp_path):
    paths = [_image(tmp_path / "x1.png"), _image(tmp_path / "x2.png")]
    assert ">x1.png</figcaption>" in viz.image_gallery(paths).html
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        viz.image_gallery(paths, ["only one"])
    empty = viz.image_gallery([])
    assert empty.count == 0 and "no images" in empty.html


def test_placeholder_is_a_square_png():
    assert _decode(viz.placeholder_png(40)).size == (40, 40)
