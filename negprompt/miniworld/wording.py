"""Captions of mini-world v2: many templates, a style word, attributes, synonyms and hypernyms.

Every caption states facts, as in v1 (:mod:`negprompt.miniworld.concepts`): ``concept=<name>``,
``style=<emoji|drawing|outline|clip art>``, ``kind=<hypernym>``, ``subgroup=<subgroup>``,
``background=<light|dark|…>``. A picture has all facts of its concept, artist and background, so a
caption is true of it when it states only those; "an outline of a dog" is false of an emoji of a
dog, which is what makes the words before a name matter.
"""

from __future__ import annotations

from .concepts import GENERAL_TEMPLATES, Caption, article
from .emoji import Concept
from .lexicon import Lexeme

STYLE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "emoji": ("an emoji of a {}.", "a colourful emoji of a {}.", "a {} emoji.", "an emoji showing a {}."),
    "drawing": ("a drawing of a {}.", "a flat cartoon drawing of a {}.", "a {} drawn as a flat icon.",
                "a simple drawing of a {}."),
    "outline": ("an outline of a {}.", "a black and white outline of a {}.", "a line drawing of a {}.",
                "an outline drawing of a {}."),
    "clip art": ("clip art of a {}.", "a clip art drawing of a {}.", "a piece of clip art showing a {}.",
                 "a clip art picture of a {}."),
}  # fmt: skip
"""Templates that name the style; ``{}`` is the concept (or a synonym)."""
STYLE_ONLY: dict[str, tuple[str, ...]] = {
    "emoji": ("an emoji.", "a colourful emoji."),
    "drawing": ("a drawing.", "a flat cartoon drawing."),
    "outline": ("an outline.", "a black and white outline."),
    "clip art": ("clip art.", "a clip art drawing."),
}
STYLE_PHRASE: dict[str, str] = {
    "emoji": "an emoji",
    "drawing": "a drawing",
    "outline": "an outline",
    "clip art": "a piece of clip art",
}
"""A picture of the style, as the subject of a caption ("a piece of clip art of something in …")."""
BACKGROUND_WORDS: dict[str, str] = {
    "light": "a light background",
    "dark": "a dark background",
    "gradient": "a gradient background",
    "noise": "a noisy background",
    "texture": "a textured background",
}
ZERO_SHOT_STYLE = {
    "emoji": "an emoji of a {}",
    "drawing": "a drawing of a {}",
    "outline": "an outline of a {}",
}
"""Prompts of the style-recognition test: which of the three is nearest to a picture (clip art, an
opt-in pretraining source, is in no test)."""


def _fill(template: str, phrase: str) -> str:
    text = template.format(phrase)
    for a in " a ", "A ":
        i = text.find(a + phrase)
        if i >= 0 and article(phrase) == "an":
            text = text[:i] + a.replace("a", "an", 1) + text[i + len(a) :]
    return text


def subgroup_phrase(subgroup: str) -> str:
    """Readable words of a subgroup (``animal-mammal`` → ``animal mammal``)."""
    return subgroup.replace("-", " ").replace("&", "and")


def concept_captions(concept: Concept, style: str, lexeme: Lexeme | None) -> list[Caption]:
    """Captions true of every picture of ``concept`` in ``style`` (any background).

    The name in every general and style template; up to two WordNet synonyms in the style templates;
    the hypernyms ("a drawing of a canine") and the subgroup state only ``kind=`` / ``subgroup=``.
    """
    c, s = f"concept={concept.name}", f"style={style}"
    name = concept.name
    out = [Caption(_fill(t, name), frozenset({c})) for t in GENERAL_TEMPLATES]
    out += [Caption(_fill(t, name), frozenset({c, s})) for t in STYLE_TEMPLATES[style]]
    out += [Caption(t, frozenset({s})) for t in STYLE_ONLY[style]]
    sub = subgroup_phrase(concept.subgroup)
    out.append(
        Caption(
            f"{STYLE_PHRASE[style]} of something in the {sub} category.",
            frozenset({s, f"subgroup={concept.subgroup}"}),
        )
    )
    if lexeme is not None and concept.group != "Flags":
        for syn in lexeme.synonyms[:2]:
            out += [Caption(_fill(t, syn), frozenset({c, s})) for t in STYLE_TEMPLATES[style][:2]]
        for hyper in lexeme.hypernyms[:2]:
            k = frozenset({f"kind={hyper}", s})
            out += [
                Caption(_fill(STYLE_TEMPLATES[style][0], hyper), k),
                Caption(_fill("a photo of a {}.", hyper), frozenset({f"kind={hyper}"})),
            ]
    return out


def background_captions(concept: Concept, style: str, background: str) -> list[Caption]:
    """Captions stating the background too ("an emoji of a dog on a dark background")."""
    facts = frozenset({f"concept={concept.name}", f"style={style}", f"background={background}"})
    where = BACKGROUND_WORDS[background]
    return [
        Caption(_fill(STYLE_TEMPLATES[style][0][:-1] + f" on {where}.", concept.name), facts),
        Caption(_fill("a {}" + f" on {where}.", concept.name), facts - {f"style={style}"}),
    ]


def picture_facts(concept: Concept, style: str, background: str, lexeme: Lexeme | None) -> frozenset[str]:
    """Every fact of a picture of ``concept`` drawn in ``style`` on ``background``."""
    facts = {
        f"concept={concept.name}",
        f"style={style}",
        f"subgroup={concept.subgroup}",
        f"background={background}",
    }
    if lexeme is not None and concept.group != "Flags":
        facts |= {f"kind={h}" for h in lexeme.hypernyms[:2]}
    return frozenset(facts)
