"""A one-line progress bar with ETA on stderr (no dependency): items, audio hours, skips."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts finished items out of `total` (or audio seconds out of `budget_s`, when that comes
    first); redraws at most every 0.2 s on a terminal,
    and prints a plain line every 10 % of the items elsewhere (logs, CI)."""

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr, budget_s: float | None = None) -> None:
        self.label, self.total, self.stream, self.budget_s = label, max(total, 1), stream, budget_s
        self.done = self.skipped = 0
        self.audio_s = 0.0
        self._started = self._drawn = time.monotonic()
        self._tty = stream.isatty()
        self._next_line = 0

    def advance(self, audio_s: float = 0.0, skipped: bool = False) -> None:
        """One more item finished, with `audio_s` seconds of audio (or skipped)."""
        self.done += 1
        self.skipped += skipped
        self.audio_s += audio_s
        now, final = time.monotonic(), self.fraction() >= 1.0
        if self._tty and (final or now - self._drawn >= 0.2):
            self._drawn = now
            self.stream.write("\r" + self.line())
        elif not self._tty and (final or self.done >= self._next_line):
            self._next_line = self.done + max(1, self.total // 10)
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def fraction(self) -> float:
        by_audio = self.audio_s / self.budget_s if self.budget_s else 0.0
        return min(1.0, max(self.done / self.total, by_audio))

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        fraction = self.fraction()
        eta = elapsed / fraction * (1 - fraction) if fraction > 0 else 0.0
        bar = "#" * int(24 * fraction) + "-" * (24 - int(24 * fraction))
        return (
            f"{self.label} [{bar}] {self.done}/{self.total} {self.audio_s / 3600:.2f} h audio, "
            f"{self.skipped} skipped, {_clock(elapsed)} elapsed, ETA {_clock(eta)}"
        )

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
