"""The concepts of the mini-world and the captions that describe them.

Every image carries a set of *facts* (``"class=coat"``, ``"colour=red"``, ``"shape=star"``, …) and
every caption states some of them. A caption is true of an image when the image has every fact the
caption states; the contrastive loss treats all true captions of an image as positives, so a batch may
hold many images of one concept (or the same sentence twice) without teaching the model that they
differ. Each concept has several templates and synonyms, so the text tower learns words rather than
sentence ids.
"""

from __future__ import annotations

from dataclasses import dataclass

CLOTHING: tuple[str, ...] = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
"""Fashion-MNIST classes in label order (the names the toolkit's prompts use)."""

CLOTHING_SYNONYMS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("t-shirt", "tee", "t-shirt top"),
    "trouser": ("trouser", "pair of trousers", "pair of pants"),
    "pullover": ("pullover", "sweater", "jumper"),
    "dress": ("dress", "gown", "summer dress"),
    "coat": ("coat", "jacket", "winter coat"),
    "sandal": ("sandal", "summer sandal", "strappy sandal"),
    "shirt": ("shirt", "button-up shirt", "blouse"),
    "sneaker": ("sneaker", "trainer", "running shoe"),
    "bag": ("bag", "handbag", "purse"),
    "ankle boot": ("ankle boot", "boot", "short boot"),
}

DIGIT_WORDS: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
DIGITS: tuple[str, ...] = tuple(f"digit {w}" for w in DIGIT_WORDS)
"""Class names of the handwritten digits, 0..9."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (40, 70, 230),
    "yellow": (240, 220, 30),
    "purple": (150, 50, 190),
    "orange": (250, 140, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
FILLS: tuple[str, ...] = ("filled", "outlined")
SIZES: tuple[str, ...] = ("small", "large")
BACKGROUNDS: tuple[str, ...] = ("black", "white", "gray", "noisy")

EVAL_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
"""The shapes of the 24 colour×shape evaluation classes (6 colours × 4 shapes)."""
HELD_OUT_COMBOS: frozenset[tuple[str, str]] = frozenset(
    {("red", "cross"), ("green", "cross"), ("blue", "cross"), ("yellow", "cross"), ("purple", "cross"),
     ("orange", "star")}
)  # fmt: skip
"""Colour×shape combinations never drawn for pretraining (their words are seen, the pair is not)."""

TEXTURES: tuple[str, ...] = (
    "striped", "checkered", "dotted", "zigzag", "wavy", "grid", "speckled", "brick", "grass", "gravel",
)  # fmt: skip
"""Texture classes: seven generated patterns and three photographed surfaces (scikit-image, CC0)."""
TEXTURE_NOUNS: dict[str, tuple[str, ...]] = {
    "striped": ("striped texture", "pattern of stripes"),
    "checkered": ("checkered texture", "checkerboard pattern"),
    "dotted": ("dotted texture", "polka dot pattern"),
    "zigzag": ("zigzag texture", "zigzag pattern"),
    "wavy": ("wavy texture", "pattern of waves"),
    "grid": ("grid texture", "pattern of grid lines"),
    "speckled": ("speckled texture", "noisy speckle pattern"),
    "brick": ("brick wall", "brick texture"),
    "grass": ("patch of grass", "grass texture"),
    "gravel": ("patch of gravel", "gravel texture"),
}

GENERAL_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of a {}",
    "a picture of a {}.",
    "an image of a {}.",
    "a {}.",
    "a close-up photo of a {}.",
    "a small photo of the {}.",
    "a blurry photo of a {}.",
    "this is a {}.",
    "there is a {} in the picture.",
)
CLOTHING_TEMPLATES: tuple[str, ...] = (
    "a grayscale photo of a {}.",
    "a {} from a fashion catalogue.",
    "a product photo of a {}.",
    "a piece of clothing: a {}.",
)
DIGIT_TEMPLATES: tuple[str, ...] = (
    "a handwritten {}.",
    "a scan of a handwritten {}.",
    "a low resolution {}.",
)
TEXTURE_TEMPLATES: tuple[str, ...] = ("a close-up of a {}.", "a surface with a {}.")


def article(phrase: str) -> str:
    """``a`` or ``an`` for a phrase."""
    return "an" if phrase[:1] in "aeiou" else "a"


@dataclass(frozen=True)
class Caption:
    """One caption and the facts it states (it is true of every image holding all of them)."""

    text: str
    facts: frozenset[str]


def _fill(template: str, phrase: str) -> str:
    text = template.format(phrase)
    return text.replace(" a a", " an a").replace(" a e", " an e").replace(" a o", " an o")


def _class_captions(fact: str, names: tuple[str, ...], templates: tuple[str, ...]) -> list[Caption]:
    """Every template × every name of one class, all stating ``fact``."""
    facts = frozenset({fact})
    return [Caption(_fill(t, s), facts) for s in names for t in templates]


def clothing_captions(name: str) -> list[Caption]:
    """Captions of a clothing class (every template × every synonym)."""
    return _class_captions(f"class={name}", CLOTHING_SYNONYMS[name], GENERAL_TEMPLATES + CLOTHING_TEMPLATES)


def digit_captions(d: int) -> list[Caption]:
    """Captions of a handwritten digit: the word, the numeral, "number …"."""
    word = DIGIT_WORDS[d]
    names = (f"digit {word}", f"number {word}", f"digit {d}", f"handwritten {word}")
    return _class_captions(f"class=digit {word}", names, GENERAL_TEMPLATES + DIGIT_TEMPLATES)


def texture_captions(name: str) -> list[Caption]:
    """Captions of a texture class."""
    return _class_captions(f"class={name}", TEXTURE_NOUNS[name], GENERAL_TEMPLATES + TEXTURE_TEMPLATES)


def shape_captions(colour: str, shape: str, fill: str, size: str, background: str) -> list[Caption]:
    """Compositional captions of a shape: each states a different subset of its attributes."""
    c, s, f, z, b = (
        f"colour={colour}",
        f"shape={shape}",
        f"fill={fill}",
        f"size={size}",
        f"background={background}",
    )
    out = []
    for template in GENERAL_TEMPLATES[:6]:
        out.append(Caption(_fill(template, f"{colour} {shape}"), frozenset({c, s})))
        out.append(Caption(_fill(template, f"{size} {colour} {shape}"), frozenset({c, s, z})))
        out.append(Caption(_fill(template, f"{fill} {colour} {shape}"), frozenset({c, s, f})))
    out += [
        Caption(
            f"a {size} {fill} {colour} {shape} on a {background} background.", frozenset({c, s, f, z, b})
        ),
        Caption(f"a {colour} {shape} on a {background} background.", frozenset({c, s, b})),
        Caption(f"a drawing of a {colour} {shape}.", frozenset({c, s})),
        Caption(f"a {shape} coloured {colour}.", frozenset({c, s})),
        Caption(f"a {shape} shape in {colour}.", frozenset({c, s})),
        Caption(_fill("a photo of a {}.", shape), frozenset({s})),
        Caption(f"something {colour}.", frozenset({c})),
    ]
    return out
