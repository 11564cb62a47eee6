"""Synonyms and hypernyms of concept names from WordNet 3.0 (Debian ``wordnet-base``), for captions.

``index.noun`` maps a lemma to its synsets (most frequent sense first); a synset is the line of
``data.noun`` at its byte offset, holding its words and pointers (``@`` = hypernym). A concept name is
looked up whole (``hot dog``), else cut before its first preposition (``woman with headscarf`` →
``woman``) and looked up by that, else by its last word (``dog face`` → ``face``) only when that word
names the thing itself, else by its first word (``dog face`` → ``dog``). The first sense that names a
drawable thing is taken (lexicographer files :data:`THINGS`: animals, artifacts, body, food, objects,
plants, shapes, substances): WordNet orders senses by frequency, so ``hot dog`` is the food, not
its first sense, a person.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from negprompt.wordnet import INSTALL_HINT, wordnet_dir

from .sources import MiniWorldDataError

_PARTS = frozenset({"face", "button", "sign", "symbol", "mark", "hand", "gesture", "flag"})
"""Last words that name a form, not the thing (``dog face`` is a dog, not a face)."""


_PREPOSITIONS = frozenset({"with", "in", "on", "of", "for", "at", "from", "over", "under", "without"})
THINGS = frozenset({5, 6, 8, 13, 17, 20, 25, 27})
"""WordNet lexicographer files of drawable things (noun.animal, artifact, body, food, object, plant,
shape, substance)."""


@dataclass(frozen=True)
class Lexeme:
    """What WordNet says of a name: its synonyms and its hypernyms (nearest first), lower-case."""

    lemma: str
    synonyms: tuple[str, ...]
    hypernyms: tuple[str, ...]


class WordNet:
    """A reader of ``index.noun`` and ``data.noun`` (only the noun part is needed)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = wordnet_dir(folder)
        index, data = self.folder / "index.noun", self.folder / "data.noun"
        for f in (index, data):
            if not f.is_file():
                raise MiniWorldDataError(f"{f} is missing; {INSTALL_HINT}")
        self._data = data
        self._index: dict[str, tuple[int, ...]] = {}
        with open(index, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(" "):
                    continue
                parts = line.split()
                try:
                    n_synsets, n_ptr = int(parts[2]), int(parts[3])
                    offsets = parts[6 + n_ptr : 6 + n_ptr + n_synsets]
                    self._index[parts[0]] = tuple(int(o) for o in offsets)
                except (IndexError, ValueError) as exc:
                    raise MiniWorldDataError(
                        f"{index} is damaged near {line[:60]!r}; {INSTALL_HINT}"
                    ) from exc

    @functools.lru_cache(maxsize=65536)  # noqa: B019 (one reader per process)
    def synset(self, offset: int) -> tuple[tuple[str, ...], tuple[int, ...], int]:
        """(words, hypernym offsets, lexicographer file) of the synset at ``offset`` of ``data.noun``."""
        with open(self._data, "rb") as f:
            f.seek(offset)
            parts = f.readline().decode("utf-8", "replace").split("|")[0].split()
        try:
            n_words = int(parts[3], 16)
            words = tuple(parts[4 + 2 * i].replace("_", " ").lower() for i in range(n_words))
            k = 4 + 2 * n_words
            n_ptr = int(parts[k])
            ptrs = [parts[k + 1 + 4 * i : k + 5 + 4 * i] for i in range(n_ptr)]
        except (IndexError, ValueError) as exc:
            raise MiniWorldDataError(f"{self._data} is damaged at offset {offset}; {INSTALL_HINT}") from exc
        hyper = tuple(int(p[1]) for p in ptrs if p[0] in ("@", "@i") and p[2] == "n")
        return words, hyper, int(parts[1])

    def is_noun(self, words: str) -> bool:
        """Whether ``words`` (space- or underscore-separated, lower-case) is a WordNet noun."""
        return words.replace(" ", "_") in self._index

    def is_kind_of(self, noun: str, name: str, depth: int = 4) -> bool:
        """Whether some sense of ``noun`` has a sense of ``name`` among its first ``depth`` levels of
        hypernyms (``emperor penguin`` is a kind of ``penguin``; ``table tennis`` is no kind of ``tennis``)."""
        level = set(self._index.get(noun.replace(" ", "_"), ()))
        for _ in range(depth):
            level = {h for offset in level for h in self.synset(offset)[1]}
            if any(name in self.synset(offset)[0] for offset in level):
                return True
        return False

    def lookup(self, name: str, depth: int = 2) -> Lexeme | None:
        """Synonyms and up to ``depth`` hypernyms of a concept name (rules in the module docstring)."""
        words = name.lower().replace("-", " ").split()
        cut = next((i for i, w in enumerate(words) if w in _PREPOSITIONS and i > 0), len(words))
        whole, words = " ".join(words), words[:cut]  # "face with halo": the head is "face"
        candidates = [whole, " ".join(words)]
        if len(words) > 1:
            if words[-1] not in _PARTS:
                candidates.append(words[-1])
            candidates.append(words[0])
        for lemma in candidates:
            for offset in self._index.get(lemma.replace(" ", "_"), ()):
                synonyms, hyper, lexfile = self.synset(offset)
                if lexfile not in THINGS:
                    continue
                chain: list[str] = []
                while hyper and len(chain) < depth:
                    hwords, hyper, _ = self.synset(hyper[0])
                    chain.append(hwords[0])
                return Lexeme(lemma, tuple(s for s in synonyms if s != lemma), tuple(chain))
        return None
