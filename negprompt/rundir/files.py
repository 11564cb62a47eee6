"""Opening the files of a run directory safely: regular files only, text read whole only up to a limit.

A run directory may be damaged or hostile: a ``log.txt`` that is a FIFO blocks a plain ``open``
forever, a sparse 512 MB log costs seconds and gigabytes to read, a device file never ends. Every
reader of `negprompt.rundir.read` goes through `check_regular` (and the text readers below), which
open without blocking, check the kind of file on the open descriptor (so a file swapped after a
check is still caught) and read at most a fixed number of bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from negprompt.rundir.schema import (
    CONFIG_FILE,
    CONTEXT_TOKENS_FILE,
    METRICS_FILE,
    RunDirError,
)

MiB = 1 << 20
TEXT_LIMITS = {CONFIG_FILE: 8 * MiB, METRICS_FILE: 64 * MiB, CONTEXT_TOKENS_FILE: 64 * MiB}
"""Largest size of each text file that is read whole; a larger one is refused as damaged."""
LOG_TAIL = 1 * MiB
"""``log.txt`` is shown from its last this many bytes (a longer log is shown cut at the front)."""
MAX_FEATURE_WIDTH = 16384
"""Largest feature width a run may record (CLIP widths are 512–1280); a wider header is damage."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _refuse(shown: str | os.PathLike, mode: int) -> RunDirError:
    return RunDirError(
        f"{shown} is {_kind(mode)}, not a regular file; a run directory holds regular files only: "
        "replace it with the file the run wrote (or write the run again)",
        file=shown,
        rule="regular file",
    )


def open_regular(path: str | os.PathLike, shown: str | os.PathLike | None = None) -> int:
    """A read-only descriptor of ``path``, opened without blocking, only if it is a regular file.

    Raises:
        RunDirError: ``path`` is a FIFO, a device, a socket or a folder (named as ``shown``).
        OSError: it cannot be opened at all.
    """
    shown = shown if shown is not None else path
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(shown, mode)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_regular(path: str | os.PathLike, shown: str | os.PathLike | None = None) -> int:
    """The size in bytes of ``path`` after checking that it is a regular file (see `open_regular`)."""
    fd = open_regular(path, shown)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike, limit: int, shown: str | os.PathLike | None = None) -> str:
    """The whole text (UTF-8) of a regular file of at most ``limit`` bytes.

    Raises:
        RunDirError: not a regular file, or larger than ``limit`` (the message gives both sizes).
    """
    shown = shown if shown is not None else path
    with os.fdopen(open_regular(path, shown), "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(limit + 1)
    if size > limit or len(data) > limit:
        raise RunDirError(
            f"{shown} is {max(size, len(data)) / MiB:.1f} MiB, more than the {limit / MiB:.0f} MiB a "
            f"{Path(shown).name} may have; it is damaged or not the file the run wrote",
            file=shown,
            rule="size limit",
        )
    return data.decode("utf-8")


def read_tail(path: str | os.PathLike, limit: int, shown: str | os.PathLike | None = None) -> tuple[str, int]:
    """``(text of the last ``limit`` bytes, bytes left out before it)`` of a regular file.

    The text starts at the first line break of the tail when bytes were left out, and undecodable
    bytes are replaced, so a log of any size is shown in constant time and memory.
    """
    with os.fdopen(open_regular(path, shown), "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        skipped = max(0, size - limit)
        fh.seek(skipped)
        data = fh.read(limit)
    if skipped and b"\n" in data:
        cut = data.index(b"\n") + 1
        skipped, data = skipped + cut, data[cut:]
    return data.decode("utf-8", errors="replace").replace("\x00", ""), skipped
