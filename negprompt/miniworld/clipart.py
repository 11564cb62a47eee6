"""Clip art of mini-world v2: Debian's public-domain ``openclipart-svg`` drawings whose file name names a concept.

A pretraining recipe may add them (``PretrainV2Config.clipart``); no benchmark folder, ID or OOD
set draws them. :func:`index` maps files to concepts by this rule:

1. **Files**: every ``*.svg`` under the folder, in sorted path order, but those under :data:`SKIPPED`:
   folders that do not draw things (gradients, patterns, sample documents), that draw interface
   actions (computer icon themes and buttons: ``stock-star``, ``pill-button``), diagram shapes
   (callouts, flowchart, jigsaw) and the package's own folder of duplicates. ``shapes/stars`` (1,378
   star shapes) stays: they are drawings of a star, and the cap keeps them from flooding it.
2. **Words**: a file's stem and a concept's name, lower-cased and cut at every character that is not
   a letter or a digit (``bear_peterm_01`` → bear, peterm, 01; ``t-shirt`` → t, shirt). Two
   concepts with the same words (``keycap #``, ``keycap *``) are left out.
3. **Match**: a concept whose words occur contiguously among the stem's. A match is not the concept
   when WordNet reads it as part of a longer noun: with the next one or two words it is a WordNet
   noun, joined or written as one word, a last plural ``s`` dropped (``baseball cap``, ``fire
   extinguisher``, ``coat of arms``, ``sun flower``, ``wedding rings``); or with the word before
   it is a WordNet noun that is no kind of the concept (``table tennis``; ``emperor penguin`` is a
   penguin and stays). This is what keeps generic one-word names (baseball, fire, coat, sun) from
   taking drawings of other things.
4. **Longest wins**: the file goes to the remaining concept with the most words; two concepts tied
   at that length leave the file out (``pen_pencil``, ``man_in_chair``).
5. **Cap**: per concept at most :data:`CAP` files, the first in sorted path order, leaving out a file
   whose name or bytes equal an earlier one's (the package holds many drawings two or three times, in
   several categories, sometimes with small changes).

Every step looks at one file at a time, so the index of a folder holding only the files an index
chose is the same index (``scripts/device_kit.py`` packs just those).

Drawing (:func:`render`): cairosvg renders a file into a 384-pixel square, the drawing fitted and
centred. A file that is not well-formed XML is damaged (reinstall the package); a well-formed file
that cairosvg cannot draw, or that draws nothing visible, is no drawing (logged and left out, the
same on every machine with the pinned cairosvg).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from xml.etree.ElementTree import ParseError

from PIL import Image

from .emoji import Concept
from .lexicon import WordNet
from .sources import MiniWorldDataError

log = logging.getLogger(__name__)

FOLDER = "/usr/share/openclipart/svg"
"""Where Debian's ``openclipart-svg`` puts its drawings."""
REINSTALL = "sudo apt-get install --reinstall openclipart-svg"
SKIPPED = (
    "buttons/",
    "computer/buttons/",
    "computer/icons/",
    "shapes/callouts/",
    "shapes/flowchart/",
    "shapes/jigsaw/",
    "special/",
    "unsorted/duplicates/",
)
"""Folders (relative to :data:`FOLDER`) whose files are never mapped (rule 1 of the module docstring)."""
CAP = 3
"""At most this many drawings per concept."""
RENDER = 384
"""Side of the square a file is rendered into (pixels), four times a glyph's: a drawing that fills a
quarter of its page still gives a full glyph."""
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> tuple[str, ...]:
    """Lower-case runs of letters and digits (``Bear_PeterM-01`` → ``("bear", "peterm", "01")``)."""
    return tuple(_WORD.findall(text.lower()))


def _names(concepts: Iterable[Concept]) -> dict[tuple[str, ...], str]:
    """Concept name by its words, without names whose words another concept shares."""
    by: dict[tuple[str, ...], list[str]] = {}
    for c in concepts:
        by.setdefault(words(c.name), []).append(c.name)
    return {w: ns[0] for w, ns in by.items() if len(ns) == 1 and w}


def _part_of_longer_noun(stem: tuple[str, ...], i: int, j: int, wordnet: WordNet) -> bool:
    """Whether ``stem[i:j]`` is only part of a longer WordNet noun there (rule 3)."""
    name = " ".join(stem[i:j])
    for k in (1, 2):
        if j + k <= len(stem):
            longer = list(stem[i : j + k])
            forms = {" ".join(longer), "".join(longer)}
            if longer[-1].endswith("s"):
                longer[-1] = longer[-1][:-1]
                forms |= {" ".join(longer), "".join(longer)}
            if any(wordnet.is_noun(f) for f in forms):
                return True
    if i > 0:
        before = " ".join(stem[i - 1 : j])
        if wordnet.is_noun(before) and not wordnet.is_kind_of(before, name):
            return True
    return False


def match(stem: tuple[str, ...], names: dict[tuple[str, ...], str], wordnet: WordNet) -> str | None:
    """The concept a file stem's words name (rules 3 and 4 of the module docstring), or None."""
    longest = max(map(len, names), default=0)
    found: set[tuple[str, ...]] = set()
    for i in range(len(stem)):
        for j in range(i + 1, min(len(stem), i + longest) + 1):
            if stem[i:j] in names and not _part_of_longer_noun(stem, i, j, wordnet):
                found.add(stem[i:j])
    if not found:
        return None
    most = max(map(len, found))
    best = {names[w] for w in found if len(w) == most}
    return best.pop() if len(best) == 1 else None


def index(
    concepts: Iterable[Concept], folder: str | Path = FOLDER, wordnet: WordNet | None = None, cap: int = CAP
) -> dict[str, tuple[Path, ...]]:
    """The drawings of each concept that has some: ``{concept name: (svg path, …)}``, at most ``cap``
    each, in sorted path order (the rule in the module docstring). ``wordnet``: default Debian's."""
    folder = Path(folder)
    names = _names(concepts)
    wordnet = wordnet if wordnet is not None else WordNet()
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.svg") if p.is_file())
    out: dict[str, list[Path]] = {}
    seen: dict[str, set[str]] = {}
    for rel in files:
        if rel.startswith(SKIPPED):
            continue
        name = match(words(Path(rel).stem), names, wordnet)
        if name is None or len(out.get(name, ())) >= cap:
            continue
        path = folder / rel
        keys = {path.name, hashlib.sha256(path.read_bytes()).hexdigest()}
        if keys & seen.setdefault(name, set()):
            continue
        seen[name] |= keys
        out.setdefault(name, []).append(path)
    return {n: tuple(ps) for n, ps in out.items()}


def render(path: Path, side: int = RENDER) -> Image.Image | None:
    """The SVG file drawn as RGBA into a ``side`` × ``side`` square (the drawing fitted and centred),
    or None when cairosvg cannot draw it or it draws nothing visible.

    Raises:
        MiniWorldDataError: the file is missing, unreadable or not well-formed XML (naming the file
            and the command that reinstalls it), or cairosvg cannot load Debian's libcairo2.
    """
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # cairocffi raises OSError when libcairo2 is missing
        raise MiniWorldDataError(
            f"clip art needs cairosvg and Debian's libcairo2 ({type(exc).__name__}: {exc}); install them "
            "with `pip install cairosvg` and `sudo apt-get install libcairo2`"
        ) from exc
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MiniWorldDataError(f"{path} cannot be read ({exc}); reinstall it: {REINSTALL}") from exc
    try:
        png = cairosvg.svg2png(bytestring=data, output_width=side, output_height=side)
    except ParseError as exc:
        raise MiniWorldDataError(f"{path} is damaged ({exc}); reinstall it: {REINSTALL}") from exc
    except Exception as exc:  # a well-formed file that uses what cairosvg does not draw
        log.info("clip art %s left out: cairosvg cannot draw it (%s: %s)", path, type(exc).__name__, exc)
        return None
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    return image if image.getchannel("A").getbbox() is not None else None
