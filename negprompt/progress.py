"""Progress bars: tqdm in a terminal, periodic plain lines in a log file or a pipe.

Every loop a person waits for uses :func:`tqdm` from here (the modules bind it under that name, so
`negprompt.viz.notebook_output` can swap it for notebook bars). When standard error is a terminal,
it is ``tqdm.auto.tqdm`` unchanged. When it is not (output redirected to a file, a batch system's
log, a pipe), a bar prints nothing during its first :data:`PLAIN_INTERVAL_S` seconds, then one plain
line every :data:`PLAIN_INTERVAL_S` seconds and its last state: a short loop (a training epoch of a
few seconds) leaves no line at all, a long one (feature extraction of a large set) reports its
progress, and no carriage returns or redraws end up in the log.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from tqdm.auto import tqdm as _terminal_tqdm
from tqdm.std import tqdm as _text_tqdm

__all__ = ["PLAIN_INTERVAL_S", "PlainLines", "tqdm"]

PLAIN_INTERVAL_S = 30.0
"""Seconds before a bar's first plain line and between its lines, outside a terminal."""


class PlainLines(io.TextIOBase):
    """A text stream for tqdm that writes each state of the bar as one line (no ``\\r``, no blank or
    repeated lines)."""

    def __init__(self, stream) -> None:
        self.stream, self.last = stream, ""

    def write(self, text: str) -> int:
        for part in text.replace("\r", "\n").split("\n"):
            part = part.strip()
            if part and part != self.last:
                self.stream.write(part + "\n")
                self.last = part
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or stream-like objects
        return False


def tqdm(iterable: Any = None, *args: Any, **kwargs: Any):
    """``tqdm(iterable, desc=…, disable=…)``: a bar in a terminal, periodic plain lines elsewhere."""
    stream = kwargs.get("file") or sys.stderr
    if kwargs.get("disable") or _is_terminal(stream):
        return _terminal_tqdm(iterable, *args, **kwargs)
    kwargs["file"] = PlainLines(stream)
    kwargs["mininterval"] = max(float(kwargs.get("mininterval", 0)), PLAIN_INTERVAL_S)
    kwargs.setdefault("delay", PLAIN_INTERVAL_S)
    kwargs.update(ascii=True, dynamic_ncols=False, ncols=kwargs.get("ncols", 80))
    return _text_tqdm(iterable, *args, **kwargs)
