"""Swapping a voice while it plays: the old and new voice crossfade at equal power.

Every alternative voice is built and warmed up before the stream starts; a swap points the
voice's preallocated `Crossfade` at the old and the new one. It renders both into its own
buffers for `fade_samples` and mixes them with sine/cosine gains, so the swap leaves no click.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from engine.rates import MAX_BLOCK_SAMPLES
from engine.voices.base import Voice


@numba.njit(nogil=True, cache=True)
def _mix_crossfade(
    out: np.ndarray, offset: int, old: np.ndarray, new: np.ndarray, count: int, done: int, fade: int
) -> int:
    """out[offset + i] += cos * old[i] + sin * new[i] along a quarter period; returns samples done."""
    for i in range(count):
        position = min(done + i + 1, fade) / fade
        angle = 0.5 * math.pi * position
        out[offset + i] += math.cos(angle) * old[i] + math.sin(angle) * new[i]
    return min(done + count, fade)


class Crossfade:
    """Fades from one voice to another over `fade_samples`, then plays only the new one.

    One per voice slot, allocated when the processor is built; `begin` (audio thread) only
    assigns references and a counter, so a swap allocates nothing while the stream runs.
    """

    def __init__(self, name: str, fade_samples: int) -> None:
        self.name = name
        self.old: Voice | None = None
        self.new: Voice | None = None
        self.fade_samples = fade_samples
        self.done = fade_samples
        self._old_buffer = np.zeros(MAX_BLOCK_SAMPLES, dtype=np.float32)
        self._new_buffer = np.zeros(MAX_BLOCK_SAMPLES, dtype=np.float32)
        _mix_crossfade(self._new_buffer, 0, self._old_buffer, self._new_buffer, 1, 0, 1)  # compile now
        self._new_buffer[:] = 0.0

    def begin(self, old: Voice, new: Voice) -> None:
        """Start fading from `old` (playing now) to `new` (already reset and warmed)."""
        self.old = old
        self.new = new
        self.done = 0

    @property
    def sounding_f0_hz(self) -> float:
        return getattr(self.new, "sounding_f0_hz", 0.0)

    @property
    def finished(self) -> bool:
        return self.done >= self.fade_samples

    def step(self, frame: np.ndarray) -> None:
        if not self.finished:
            self.old.step(frame)
        self.new.step(frame)

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        if self.finished:
            self.new.render(out, offset, count)
            return
        self._old_buffer[:count] = 0.0
        self._new_buffer[:count] = 0.0
        self.old.render(self._old_buffer, 0, count)
        self.new.render(self._new_buffer, 0, count)
        self.done = _mix_crossfade(
            out, offset, self._old_buffer, self._new_buffer, count, self.done, self.fade_samples
        )

    def reset(self) -> None:
        self.done = self.fade_samples
        if self.new is not None:
            self.new.reset()
