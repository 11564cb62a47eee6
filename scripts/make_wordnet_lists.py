"""Build the WordNet lists that ship with the package, for NegLabel and CSP.

Reads WordNet 3.0's raw ``data.noun`` and ``data.adj`` (as shipped by Debian's ``wordnet-base``)
and writes, under ``negprompt/data/resources/wordnet/``:

* ``noun.tsv.gz``, ``adj.tsv.gz``: one line per synset in data-file order,
  ``lexname<TAB>word<TAB>word…`` (gzip without a time stamp, so a rebuild is byte-identical);
* ``LICENSE-WordNet-3.0.txt``: WordNet 3.0's licence notice, copied from the data files' header.

Usage::

    python scripts/make_wordnet_lists.py [WORDNET_DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import tempfile
from pathlib import Path

from negprompt.wordnet import DEFAULT_WORDNET_DIR, SHIPPED_DIR, read_data_file

PARTS = ("noun", "adj")


def licence_notice(data_file: Path) -> str:
    """The licence header of a WordNet data file (its leading lines that start with a space)."""
    lines = []
    with open(data_file, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith(" "):
                break
            number, _, text = line.strip(" \n").partition(" ")
            lines.append(text.rstrip() if number.isdigit() else line.rstrip())
    if not any("WordNet 3.0 Copyright" in t for t in lines):
        raise ValueError(f"{data_file} has no WordNet 3.0 licence header; is it WordNet 3.0?")
    return "\n".join(lines).strip() + "\n"


def gzip_bytes(text: str) -> bytes:
    """``text`` (UTF-8) gzip-compressed at level 9 with no file name or time stamp."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as fh:
        fh.write(text.encode("utf-8"))
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_WORDNET_DIR), help="WordNet 3.0 folder")
    parser.add_argument("--out", default=str(SHIPPED_DIR), help="output folder")
    args = parser.parse_args(argv)
    source, out = Path(args.source), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        synsets = read_data_file(source / f"data.{part}")
        text = "".join("\t".join((s.lexname, *s.words)) + "\n" for s in synsets)
        write_atomic(out / f"{part}.tsv.gz", gzip_bytes(text))
        print(f"{part}: {len(synsets)} synsets -> {out / f'{part}.tsv.gz'}")
    notice = (
        "The files noun.tsv.gz and adj.tsv.gz in this folder are derived from WordNet 3.0\n"
        "(data.noun and data.adj), distributed under the following licence.\n\n"
    )
    write_atomic(out / "LICENSE-WordNet-3.0.txt", (notice + licence_notice(source / "data.noun")).encode())


if __name__ == "__main__":
    main()
