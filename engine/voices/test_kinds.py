"""Voice kinds and a task for tests of the live host, selected by the config.

The engine process is spawned, so a test cannot monkeypatch anything inside it; these kinds
are how a test reaches the audio thread:
- `test:raise-after-frames:N` plays like the organ reference voice, then raises from `step`
  after its N-th frame (the voice must fall silent, be counted, and the stream go on);
- `test:transposed-by-task` plays like the organ, shifted by the semitones that the
  `TransposeTask` publishes (a task with state whose result changes what a voice plays, so
  that live == perform covers task results coming into force at trigger + lookahead).
"""

from __future__ import annotations

import numpy as np

from engine.voices.base import Voice

FAULT_PREFIX = "test:raise-after-frames:"
TASK_TRANSPOSED_KIND = "test:transposed-by-task"
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


class TransposeTask:
    """Every 0.2 s, a transposition for the next 0.2 s: 0 and 12 semitones in turn (its state),
    plus one more when the window's mean loudness is above -40 dB (its frames)."""

    name = "test-transpose"
    period_frames = 50
    lookahead_frames = 25
    history_frames = 50
    result_size = 1

    def __init__(self) -> None:
        self.calls = 0

    def compute(self, frames: np.ndarray, out: np.ndarray) -> None:
        self.calls += 1
        out[0] = 12.0 * (self.calls % 2) + (1.0 if frames[:, 2].mean() > -40.0 else 0.0)


class TaskTransposedVoice:
    """A reference voice whose interval moves by the transposition in force on the control bus."""

    def __init__(self, voice, interval_semitones: float) -> None:  # noqa: ANN001 (a ReferenceVoice)
        self.name = voice.name
        self._voice = voice
        self._interval = interval_semitones
        self._bus = None
        self._task = 0

    def bind_bus(self, bus, tasks: list) -> None:  # noqa: ANN001 (engine.scheduling.ControlBus)
        """Read the TransposeTask's result from `bus` (the processor calls this once)."""
        self._bus = bus
        self._task = next(i for i, task in enumerate(tasks) if task.name == TransposeTask.name)

    def step(self, frame: np.ndarray) -> None:
        offset = self._bus.value(self._task, 0, 0.0) if self._bus is not None else 0.0
        self._voice.set_interval(self._interval + offset)
        self._voice.step(frame)

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        self._voice.render(out, offset, count)

    def reset(self) -> None:
        self._voice.reset()
