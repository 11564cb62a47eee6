"""Progress bars outside a terminal: nothing for short loops, periodic plain lines for long ones."""

from __future__ import annotations

import io

import negprompt.progress as progress
from negprompt.progress import PlainLines, tqdm


class _Log(io.StringIO):
    def isatty(self) -> bool:
        return False


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_short_loop_leaves_no_line_in_a_log():
    log = _Log()
    for _epoch in range(50):  # fifty quick epochs: not one line (they used to leave 2 each)
        for _ in tqdm(range(10), desc="stage 1 epoch", leave=False, file=log):
            pass
    assert log.getvalue() == ""


def test_a_long_loop_reports_in_plain_lines(monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    log = _Log()
    bar = tqdm(range(3), desc="features demo/id-test", file=log, unit="img")
    for _ in bar:
        pass
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines and all(line.startswith("features demo/id-test:") for line in lines)
    assert "3/3" in lines[-1] and len(lines) == len(set(lines))  # no repeated final line


def test_a_terminal_gets_the_usual_bar():
    screen = _Terminal()
    for _ in tqdm(range(3), desc="x", file=screen, mininterval=0):
        pass
    assert "\r" in screen.getvalue()


def test_plain_lines_drop_redraws_and_blanks():
    out = io.StringIO()
    stream = PlainLines(out)
    stream.write("\ra 1/3\ra 1/3\r   \ra 2/3\n\n")
    assert out.getvalue() == "a 1/3\na 2/3\n"
