"""A one-line progress bar on stderr (only on a terminal; elsewhere it stays quiet)."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress"]

_WIDTH = 30


class Progress:
    """`advance()` per unit of work; `note` says what was done so far."""

    def __init__(
        self, total: int, unit: str, *, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.total = max(total, 0)
        self.done = 0
        self.unit = unit
        self.note = ""
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._drawn = False

    def advance(self, steps: int = 1, *, note: str = "") -> None:
        self.done += steps
        if note:
            self.note = note
        self._draw()

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

    def _draw(self) -> None:
        if not self._enabled:
            return
        total = self.total or 1
        filled = min(_WIDTH, _WIDTH * self.done // total)
        bar = "#" * filled + "." * (_WIDTH - filled)
        text = f"[{bar}] {self.done}/{self.total} {self.unit} {self.note}".rstrip()
        self._stream.write(f"\r{text}\x1b[K")  # clear what a longer line left
        self._stream.flush()
        self._drawn = True
