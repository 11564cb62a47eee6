"""A short reader of WordNet 3.0's raw database files (``data.noun``, ``data.adj``), for NegLabel.

The files come with Debian's ``wordnet-base`` package (``/usr/share/wordnet``). Each synset is one
line (lines starting with a space are the licence header)::

    synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id …] p_cnt [pointers …] | gloss

``w_cnt`` is a two-digit hexadecimal count; words use ``_`` for spaces, and adjectives may carry a
syntactic marker such as ``(a)``, ``(p)`` or ``(ip)`` that is not part of the word.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_WORDNET_DIR",
    "INSTALL_HINT",
    "check_wordnet",
    "read_synsets",
    "wordnet_dir",
    "wordnet_words",
]

DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")
INSTALL_HINT = (
    "install WordNet 3.0 with `sudo apt-get install wordnet-base` (Debian/Ubuntu), or point "
    "$NEGPROMPT_WORDNET (or wordnet_dir=) at a folder holding data.noun and data.adj"
)
_MARKER = re.compile(r"\((a|p|ip)\)$")


def wordnet_dir(path: str | os.PathLike | None = None) -> Path:
    """The WordNet folder: ``path``, else ``$NEGPROMPT_WORDNET``, else ``/usr/share/wordnet``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("NEGPROMPT_WORDNET")
    return Path(env).expanduser() if env else DEFAULT_WORDNET_DIR


def check_wordnet(path: str | os.PathLike | None = None, parts: Sequence[str] = ("noun", "adj")) -> Path:
    """The WordNet folder if its ``data.<part>`` files exist; FileNotFoundError with the fix if not."""
    folder = wordnet_dir(path)
    missing = [f"data.{p}" for p in parts if not (folder / f"data.{p}").is_file()]
    if missing:
        raise FileNotFoundError(
            f"NegLabel needs WordNet 3.0 but {', '.join(missing)} is missing in {folder}; {INSTALL_HINT} "
            "(or turn NegLabel off: neglabel=False, --no-neglabel)"
        )
    return folder


def read_synsets(file: str | os.PathLike) -> list[list[str]]:
    """The words of every synset of one ``data.<pos>`` file, in file order (``_`` -> space).

    Raises:
        FileNotFoundError: the file is missing (with the install command).
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
                count = int(fields[3], 16)
                words = fields[4 : 4 + 2 * count : 2]
                if count < 1 or len(words) != count:
                    raise ValueError
            except (IndexError, ValueError):
                raise ValueError(
                    f"{file}:{number}: not a WordNet data line (offset lex_filenum ss_type w_cnt "
                    f"word lex_id …); is this a WordNet 3.0 data.noun / data.adj file?"
                ) from None
            synsets.append([_MARKER.sub("", w).replace("_", " ") for w in words])
    if not synsets:
        raise ValueError(f"{file} holds no synsets; is it a WordNet 3.0 data file?")
    return synsets


def wordnet_words(
    path: str | os.PathLike | None = None,
    parts: Sequence[str] = ("noun", "adj"),
    *,
    all_lemmas: bool = False,
) -> list[str]:
    """Candidate labels: the first word of every synset (or all words), deduplicated, in file order.

    Args:
        path: the WordNet folder (see `wordnet_dir`).
        parts: parts of speech to read (``data.<part>`` files); NegLabel uses nouns and adjectives.
        all_lemmas: every word of every synset instead of each synset's first one.

    Returns:
        Unique words (case-insensitive), e.g. ``["entity", "physical entity", …]``.
    """
    folder = check_wordnet(path, parts)
    seen: set[str] = set()
    words = []
    for part in parts:
        for synset in read_synsets(folder / f"data.{part}"):
            for word in synset if all_lemmas else synset[:1]:
                if word.lower() not in seen:
                    seen.add(word.lower())
                    words.append(word)
    return words
