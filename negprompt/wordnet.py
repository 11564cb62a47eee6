"""WordNet 3.0's nouns and adjectives for NegLabel and CSP: shipped with the package, or read from
WordNet's raw database files (``data.noun``, ``data.adj``) when a WordNet folder holds them.

The shipped lists (``negprompt/data/resources/wordnet/{noun,adj}.tsv.gz``, with WordNet 3.0's
licence notice beside them) were generated from Debian's ``wordnet-base`` by
``scripts/make_wordnet_lists.py``; reading the raw files gives the same synsets (tested), so ``pip
install`` alone is enough. One line per synset, in data-file order::

    lexname<TAB>word<TAB>word…            e.g.  noun.animal<TAB>dog<TAB>domestic dog<TAB>Canis familiaris

The raw data files have one synset a line (lines starting with a space are the licence header)::

    synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id …] p_cnt [pointers …] | gloss

``lex_filenum`` numbers the lexicographer file (:data:`LEXNAMES`, from WordNet's ``lexnames(5WN)``);
``w_cnt`` is a two-digit hexadecimal count; words use ``_`` for spaces, and adjectives may carry a
syntactic marker such as ``(a)``, ``(p)`` or ``(ip)`` that is not part of the word.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_WORDNET_DIR",
    "INSTALL_HINT",
    "LEXNAMES",
    "SHIPPED_DIR",
    "Synset",
    "check_wordnet",
    "load_synsets",
    "read_data_file",
    "read_shipped",
    "read_synsets",
    "wordnet_dir",
    "wordnet_source",
    "wordnet_words",
]

log = logging.getLogger("negprompt.wordnet")

DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")
SHIPPED_DIR = Path(__file__).resolve().parent / "data" / "resources" / "wordnet"
"""The package's own copy of WordNet 3.0's noun and adjective synsets (and its licence)."""
INSTALL_HINT = (
    "reinstall negprompt (its WordNet lists ship as package data), or install WordNet 3.0 with "
    "`sudo apt-get install wordnet-base` (Debian/Ubuntu) and point $NEGPROMPT_WORDNET (or wordnet_dir=) "
    "at a folder holding data.noun and data.adj"
)
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
)  # fmt: skip
"""WordNet 3.0's lexicographer files, indexed by ``lex_filenum``."""
_MARKER = re.compile(r"\((a|p|ip)\)$")


@dataclass(frozen=True)
class Synset:
    """One synset: its lexicographer file (``noun.person``, ``adj.pert``, …) and its words."""

    lexname: str
    words: tuple[str, ...]


def wordnet_dir(path: str | os.PathLike | None = None) -> Path:
    """The WordNet folder: ``path``, else ``$NEGPROMPT_WORDNET``, else ``/usr/share/wordnet``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("NEGPROMPT_WORDNET")
    return Path(env).expanduser() if env else DEFAULT_WORDNET_DIR


def wordnet_source(path: str | os.PathLike | None = None, parts: Sequence[str] = ("noun", "adj")) -> Path:
    """Where the synsets come from: the WordNet folder (`wordnet_dir`) if it holds every
    ``data.<part>``, else the shipped lists (:data:`SHIPPED_DIR`)."""
    folder = wordnet_dir(path)
    if all((folder / f"data.{p}").is_file() for p in parts):
        return folder
    return SHIPPED_DIR


def check_wordnet(path: str | os.PathLike | None = None, parts: Sequence[str] = ("noun", "adj")) -> Path:
    """The source of `wordnet_source` if its files exist; FileNotFoundError with the fix if not.

    Cheap (no file is parsed): call it before loading a model.
    """
    source = wordnet_source(path, parts)
    if source != SHIPPED_DIR:
        return source
    missing = [f"{p}.tsv.gz" for p in parts if not (SHIPPED_DIR / f"{p}.tsv.gz").is_file()]
    if missing:
        raise FileNotFoundError(
            f"NegLabel needs WordNet 3.0: no data.{'/'.join(parts)} in {wordnet_dir(path)} and the package's "
            f"own lists ({', '.join(missing)}) are missing in {SHIPPED_DIR}; {INSTALL_HINT} "
            "(or turn NegLabel off: neglabel=False, --no-neglabel)"
        )
    return source


def read_data_file(file: str | os.PathLike) -> list[Synset]:
    """Every synset of one raw ``data.<pos>`` file, in file order (``_`` -> space, markers dropped).

    Raises:
        FileNotFoundError: the file is missing (with the fix).
        ValueError: a line does not follow the data-file format (file and line number given).
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"WordNet file {file} not found; {INSTALL_HINT}")
    synsets = []
    with open(file, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip() or line[0] == " ":
                continue
            fields = line.split(" | ", 1)[0].split()
            try:
                lexname = LEXNAMES[int(fields[1])]
                count = int(fields[3], 16)
                words = fields[4 : 4 + 2 * count : 2]
                if count < 1 or len(words) != count:
                    raise ValueError
            except (IndexError, ValueError):
                raise ValueError(
                    f"{file}:{number}: not a WordNet data line (offset lex_filenum ss_type w_cnt "
                    f"word lex_id …); is this a WordNet 3.0 data.noun / data.adj file?"
                ) from None
            synsets.append(Synset(lexname, tuple(_MARKER.sub("", w).replace("_", " ") for w in words)))
    if not synsets:
        raise ValueError(f"{file} holds no synsets; is it a WordNet 3.0 data file?")
    return synsets


def read_synsets(file: str | os.PathLike) -> list[list[str]]:
    """The words of every synset of one raw ``data.<pos>`` file, in file order (see `read_data_file`)."""
    return [list(s.words) for s in read_data_file(file)]


def read_shipped(part: str, folder: str | os.PathLike | None = None) -> list[Synset]:
    """The shipped synsets of ``part`` (``noun`` or ``adj``) from ``<folder>/<part>.tsv.gz``
    (default :data:`SHIPPED_DIR`).

    Raises:
        FileNotFoundError: the file is missing (a broken install: reinstall).
        ValueError: a line is not ``lexname<TAB>word…`` with a known lexname (file and line given).
    """
    file = Path(SHIPPED_DIR if folder is None else folder) / f"{part}.tsv.gz"
    if not file.is_file():
        raise FileNotFoundError(f"the package's WordNet list {file} is missing; {INSTALL_HINT}")
    known = set(LEXNAMES)
    synsets = []
    try:
        with gzip.open(file, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                lexname, *words = line.rstrip("\n").split("\t")
                if lexname not in known or not words or not all(words):
                    raise ValueError(
                        f"{file}:{number}: not a 'lexname<TAB>word…' line; {INSTALL_HINT} "
                        "(or rebuild it with scripts/make_wordnet_lists.py)"
                    )
                synsets.append(Synset(lexname, tuple(words)))
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ValueError(f"{file} is damaged ({err}); {INSTALL_HINT}") from None
    if not synsets:
        raise ValueError(f"{file} holds no synsets; {INSTALL_HINT}")
    return synsets


def load_synsets(part: str, path: str | os.PathLike | None = None) -> list[Synset]:
    """The synsets of ``part`` from `wordnet_source` (raw WordNet files, else the shipped lists)."""
    source = check_wordnet(path, (part,))
    if source == SHIPPED_DIR:
        return read_shipped(part)
    return read_data_file(source / f"data.{part}")


def wordnet_words(
    path: str | os.PathLike | None = None,
    parts: Sequence[str] = ("noun", "adj"),
    *,
    all_lemmas: bool = False,
) -> list[str]:
    """Candidate labels: the first word of every synset (or all words), deduplicated, in file order.

    Args:
        path: the WordNet folder (see `wordnet_dir`); without its data files, the shipped lists.
        parts: parts of speech to read; NegLabel uses nouns and adjectives.
        all_lemmas: every word of every synset instead of each synset's first one.

    Returns:
        Unique words (case-insensitive), e.g. ``["entity", "physical entity", …]``.
    """
    check_wordnet(path, parts)
    seen: set[str] = set()
    words = []
    for part in parts:
        for synset in load_synsets(part, path):
            for word in synset.words if all_lemmas else synset.words[:1]:
                if word.lower() not in seen:
                    seen.add(word.lower())
                    words.append(word)
    return words
