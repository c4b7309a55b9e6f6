"""A voice kind for fault-injection tests: `test:raise-after-frames:N` plays like the organ
reference voice, then raises from `step` at its N-th frame.

The live host's engine process is spawned, so a test cannot monkeypatch anything inside it; the
config selecting this kind is how a test makes the audio thread meet an exception and checks
that the voice falls silent, is counted, and the stream goes on.
"""

from __future__ import annotations

import numpy as np

from engine.voices.base import Voice

FAULT_PREFIX = "test:raise-after-frames:"
PLAYS_LIKE = "reference:organ"


def frames_before_fault(kind: str) -> int:
    """N of `test:raise-after-frames:N`; a ValueError names a malformed kind."""
    count = kind[len(FAULT_PREFIX):]
    if not count.isdigit():
        raise ValueError(f"voice kind {kind!r}: expected {FAULT_PREFIX}N with N a whole number of frames")
    return int(count)


class RaisingVoice:
    """`voice` until its `after_frames`-th frame, then RuntimeError from every step."""

    def __init__(self, voice: Voice, after_frames: int) -> None:
        self.name = voice.name
        self._voice = voice
        self._after_frames = after_frames
        self._frames = 0

    def step(self, frame: np.ndarray) -> None:
        self._frames += 1
        if self._frames > self._after_frames:
            raise RuntimeError(f"test fault: voice {self.name} raised at frame {self._frames}")
        self._voice.step(frame)

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        self._voice.render(out, offset, count)

    def reset(self) -> None:
        self._frames = 0
        self._voice.reset()
