"""The interface every follower voice implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Voice(Protocol):
    """One follower voice. Both methods run on the audio thread and must not allocate."""

    name: str

    def step(self, frame: np.ndarray) -> None:
        """Take one analysis frame (float64[16], engine/features layout) and set new targets."""

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        """Add `count` samples of this voice into out[offset:offset + count]."""

    def reset(self) -> None:
        """Silence the voice and clear its state (panic, fault recovery)."""

    @property
    def sounding_f0_hz(self) -> float:
        """The pitch it plays now, 0 when silent (for displays; optional: 0 when absent)."""
