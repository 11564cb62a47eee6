"""Augmented pictures of mini-world v2: shape, determinism, variety and readable outlines."""

import numpy as np
import pytest

from negprompt.miniworld import artists
from negprompt.miniworld.augment import BACKGROUND_KINDS, Augment, background, compose
from negprompt.miniworld.emoji import load_hierarchy


@pytest.fixture(scope="module")
def dog():
    return artists.glyph("noto", load_hierarchy().by_name["dog face"])


@pytest.mark.parametrize("size", [32, 64])
def test_a_picture_has_the_model_input_size_and_is_seeded(dog, size):
    a = compose(dog, np.random.default_rng(1), Augment(size=size))
    b = compose(dog, np.random.default_rng(1), Augment(size=size))
    c = compose(dog, np.random.default_rng(2), Augment(size=size))
    assert a.shape == (size, size, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_pictures_vary_in_background_and_placement(dog):
    pics = np.stack([compose(dog, np.random.default_rng(s)) for s in range(20)]).astype(float)
    assert pics.std(axis=0).mean() > 20


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_every_background_kind(kind):
    bg = background(kind, 32, np.random.default_rng(0))
    assert bg.shape == (32, 32, 3) and 0 <= bg.min() and bg.max() <= 255


def test_outlines_are_inked_against_the_background():
    heart = artists.glyph("symbola", load_hierarchy().by_name["red heart"])
    no_occlusion = Augment(occlude_p=0.0, clutter_p=0.0, colour=0.0, rotation=0.0, scale=(0.9, 0.9))
    for kind, darker in (("light", True), ("dark", False)):
        pic = compose(heart, np.random.default_rng(0), no_occlusion, outline=True, kind=kind).astype(float)
        centre, corner = pic[12:20, 12:20].mean(), pic[:3, :3].mean()
        assert (centre < corner - 40) if darker else (centre > corner + 40)


def test_unknown_background_is_an_error():
    with pytest.raises(ValueError, match="choose one of"):
        background("plaid", 32, np.random.default_rng(0))
