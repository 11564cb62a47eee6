"""The log of a run: the package's INFO lines collected while a step runs, for ``log.txt``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def capture_log(lines: list[str], file: Path | None = None) -> Iterator[None]:
    """Collect the package's INFO log lines into ``lines`` (and append them to ``file``)."""
    package = logging.getLogger("negprompt")
    handler = _ListHandler(lines, file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    level = package.level
    package.addHandler(handler)
    package.setLevel(min(package.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        handler.close()


class _ListHandler(logging.Handler):
    """Append formatted records to a list and, optionally, to a file."""

    def __init__(self, lines: list[str], file: Path | None) -> None:
        super().__init__(logging.INFO)
        self.lines, self.file = lines, file

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.lines.append(text)
        if self.file is not None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.file, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")
