"""Voice kinds and a task for tests of the live host, selected by the config.

The engine process is spawned, so a test cannot monkeypatch anything inside it; these kinds
are how a test reaches the audio thread:
- `test:raise-after-frames:N` plays like the organ reference voice, then raises from `step`
  after its N-th frame (the voice must fall silent, be counted, and the stream go on);
- `test:plays-task-plan` plays the organ timbre from the plan the `PlanTestTask` publishes (a
  task with state whose result decides what a voice plays, through a `PlanPart`, so that
  live == perform covers plans coming into force at trigger + lookahead).
"""

from __future__ import annotations

import numpy as np

from engine.features.frames import F0, LOUDNESS, VOICING
from engine.parts import MAX_NOTES, PART_ACTIVE, PART_F0, PART_LOUDNESS, PART_ONSET, PART_ROWS, plan_size
from engine.voices.base import Voice

FAULT_PREFIX = "test:raise-after-frames:"
TASK_PLAN_KIND = "test:plays-task-plan"
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

    @property
    def sounding_f0_hz(self) -> float:
        return self._voice.sounding_f0_hz

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        self._voice.render(out, offset, count)

    def reset(self) -> None:
        self._frames = 0
        self._voice.reset()


class PlanTestTask:
    """Every 0.2 s, a plan for the next 0.2 s: one note at the last voiced leader pitch of its
    window, 7 semitones up, then an octave higher on every other call (its state), at that
    frame's loudness; silent when the window's last 10 frames are unvoiced."""

    name = "test-plan"
    period_frames = 50
    lookahead_frames = 25
    history_frames = 50
    horizon_frames = 50
    result_size = plan_size(50)

    def __init__(self) -> None:
        self.calls = 0

    def compute(self, frames: np.ndarray, out: np.ndarray, trigger: int = 0) -> None:
        self.calls += 1
        plan = out.reshape(self.horizon_frames, PART_ROWS, MAX_NOTES)
        plan[:] = 0.0
        plan[:, PART_LOUDNESS] = -100.0
        voiced = np.nonzero(frames[:, VOICING] >= 0.5)[0]
        if voiced.size and voiced[-1] >= len(frames) - 10:
            last = voiced[-1]
            plan[:, PART_F0, 0] = frames[last, F0] * 2.0 ** ((7 + 12 * (self.calls % 2)) / 12.0)
            plan[:, PART_LOUDNESS, 0] = frames[last, LOUDNESS]
            plan[:, PART_ACTIVE, 0] = 1.0
            plan[0, PART_ONSET, 0] = 1.0
