"""The concept hierarchy of mini-world v2: Unicode's emoji list as group → subgroup → concept.

The list is ``emoji-test.txt`` of the Unicode Consortium (Debian's ``unicode-data`` package puts it
at ``/usr/share/unicode/emoji/emoji-test.txt``; ``$NEGPROMPT_EMOJI_TEST`` points elsewhere). Its
lines look like::

    # group: Animals & Nature
    # subgroup: animal-mammal
    1F415  ; fully-qualified  # 🐕 E0.7 dog

A concept is one ``fully-qualified`` line whose code points hold no skin-tone modifier
(U+1F3FB–U+1F3FF) and that is not in the ``Component`` group (skin tones and hair styles alone).
Its name is the line's name with ``": "`` read as a space (``flag: Japan`` → ``flag Japan``), so every
name works in a caption template.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .sources import MiniWorldDataError

EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
EMOJI_TEST_ENV = "NEGPROMPT_EMOJI_TEST"
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
"""Fitzpatrick skin-tone modifiers: variants with them are left out (one concept, one drawing)."""
LEFT_OUT_GROUPS = frozenset({"Component"})
RESTORE = "sudo apt-get install unicode-data"
_LINE = re.compile(r"^([0-9A-F ]+?)\s*;\s*([a-z-]+)\s*#\s*(\S+)\s+E\d+\.\d+\s+(.+)$")


@dataclass(frozen=True)
class Concept:
    """One emoji concept.

    Attributes:
        name: caption name (``"dog face"``, ``"flag Japan"``); unique within the hierarchy.
        group: Unicode group (``"Animals & Nature"``).
        subgroup: Unicode subgroup (``"animal-mammal"``), unique across groups.
        codepoints: the fully-qualified sequence.
    """

    name: str
    group: str
    subgroup: str
    codepoints: tuple[int, ...]

    @property
    def text(self) -> str:
        """The emoji as a string."""
        return "".join(map(chr, self.codepoints))

    @property
    def key(self) -> str:
        """File-name key: lower-case hex code points joined by ``-`` (``1f415``)."""
        return "-".join(f"{c:x}" for c in self.codepoints)


def emoji_test_path(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$NEGPROMPT_EMOJI_TEST``, else Debian's file."""
    if path is not None:
        return Path(path)
    env = os.environ.get(EMOJI_TEST_ENV)
    return Path(env) if env else EMOJI_TEST


def parse_emoji_test(lines: Iterable[str], source: str = "emoji-test.txt") -> list[Concept]:
    """The concepts of ``emoji-test.txt``'s lines, in file order (rules in the module docstring).

    Raises:
        MiniWorldDataError: a data line before any group or subgroup, a name seen twice, or no concept.
    """
    group = subgroup = None
    out: list[Concept] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
            continue
        if line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
            continue
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise MiniWorldDataError(f"{source}:{number}: not an emoji-test line: {line[:80]!r}; {RESTORE}")
        if m.group(2) != "fully-qualified":
            continue
        if group is None or subgroup is None:
            raise MiniWorldDataError(f"{source}:{number}: emoji before any '# group:'/'# subgroup:' line")
        cps = tuple(int(c, 16) for c in m.group(1).split())
        if group in LEFT_OUT_GROUPS or SKIN_TONES.intersection(cps):
            continue
        name = m.group(4).replace(": ", " ").strip()
        if name in seen:
            raise MiniWorldDataError(f"{source}:{number}: the name {name!r} occurs twice")
        seen.add(name)
        out.append(Concept(name, group, subgroup, cps))
    if not out:
        raise MiniWorldDataError(f"{source} holds no fully-qualified emoji; {RESTORE}")
    return out


@dataclass(frozen=True)
class Hierarchy:
    """Concepts with their groups and subgroups (each tuple in file order)."""

    concepts: tuple[Concept, ...]

    @functools.cached_property
    def by_name(self) -> dict[str, Concept]:
        """Concept by name."""
        return {c.name: c for c in self.concepts}

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups, in file order."""
        return tuple(dict.fromkeys(c.group for c in self.concepts))

    def subgroups(self, group: str | None = None) -> tuple[str, ...]:
        """The subgroups (of ``group`` when given), in file order."""
        return tuple(dict.fromkeys(c.subgroup for c in self.concepts if group in (None, c.group)))

    def in_subgroup(self, subgroup: str) -> tuple[Concept, ...]:
        """The concepts of one subgroup."""
        return tuple(c for c in self.concepts if c.subgroup == subgroup)


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> Hierarchy:
    with open(path, encoding="utf-8") as f:
        return Hierarchy(tuple(parse_emoji_test(f, str(path))))


def load_hierarchy(path: str | os.PathLike | None = None) -> Hierarchy:
    """The hierarchy from ``emoji-test.txt`` (cached per file and modification time).

    Raises:
        MiniWorldDataError: the file is missing (naming the Debian package) or damaged.
    """
    p = emoji_test_path(path)
    try:
        mtime = p.stat().st_mtime
    except FileNotFoundError:
        raise MiniWorldDataError(
            f"the emoji list {p} is missing: {RESTORE} (Debian/Ubuntu), or set {EMOJI_TEST_ENV} to a "
            "copy of https://unicode.org/Public/emoji/latest/emoji-test.txt"
        ) from None
    try:
        return _load(p, mtime)
    except UnicodeDecodeError as exc:
        raise MiniWorldDataError(f"{p} is not UTF-8 text ({exc}); {RESTORE}") from exc
