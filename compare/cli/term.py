"""Terminal helpers shared by every command: colour and a progress bar, both on a terminal only.

Colour follows the NO_COLOR convention (https://no-color.org is the convention's name, not a
dependency): set to anything non-empty, it turns colour off; output that is not a terminal
(a pipe, a file) never gets escape codes. The progress bar goes to stderr, redraws one line
with elapsed time and an ETA, and is silent when stderr is not a terminal, so logs and CI
output stay clean.
"""
from __future__ import annotations

import os
import re
import sys
import time
from typing import IO, TextIO

_CODES = {"red": "31", "green": "32", "yellow": "33", "bold": "1"}
# The words a reader scans for: verdicts and FAIL rows.
_WORDS = re.compile(r"\b(FAIL|MISMATCH|ERROR|agree)\b")
_WORD_COLOUR = {"FAIL": "red", "MISMATCH": "red", "ERROR": "red", "agree": "green"}


def use_colour(stream: IO[str] | None = None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to a non-empty value."""
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str, stream: IO[str] | None = None) -> str:
    """``text`` in ``colour`` when ``stream`` takes colour, else unchanged."""
    if not use_colour(stream):
        return text
    return f"\033[{_CODES[colour]}m{text}\033[0m"


def highlight(text: str, stream: IO[str] | None = None) -> str:
    """Verdict words (FAIL, MISMATCH, ERROR in red; agree in green) coloured for a terminal."""
    if not use_colour(stream):
        return text
    return _WORDS.sub(lambda m: f"\033[{_CODES[_WORD_COLOUR[m.group(1)]]}m{m.group(1)}\033[0m",
                      text)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """``[#####.....] 3/10 layernorm 0:04 elapsed, ETA 0:09`` redrawn in place on stderr.

    Silent unless ``stream`` (default stderr) is a terminal. Use as a context manager so the
    line is cleared when the work ends or is interrupted.
    """

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 24) -> None:
        self.total, self.width, self.done = max(total, 1), width, 0
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self.start = time.monotonic()

    def line(self, label: str = "") -> str:
        """The bar's text for the current state (what ``update`` draws)."""
        elapsed = time.monotonic() - self.start
        filled = self.width * self.done // self.total
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        tail = f", ETA {_clock(eta)}" if eta is not None else ""
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"{label} {_clock(elapsed)} elapsed{tail}")

    def update(self, label: str = "", done: int | None = None) -> None:
        self.done = self.done if done is None else done
        if self.enabled:
            self.stream.write("\r\033[K" + self.line(label))
            self.stream.flush()

    def advance(self, label: str = "") -> None:
        self.update(label, self.done + 1)

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def __enter__(self) -> Progress:
        self.update()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()
