"""Deadline-scheduled background tasks over the analysis frames (DESIGN.md section 9).

A task is triggered at fixed frame indices (every `period_frames`), computes from the frames up
to its trigger frame t, and its result is applied by the audio thread exactly at frame
t + `lookahead_frames`. Offline the scheduler computes synchronously at the trigger; live, a
worker thread (realtime/workers.py) computes the same thing, so both agree sample for sample
whenever no deadline is missed. A result that is not ready at its frame is a deadline miss:
it is counted and the previous result stays in force.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from engine.features.frames import N_FEATURES


class FrameTask(Protocol):
    """A background computation over recent analysis frames."""

    name: str
    period_frames: int      # N: triggered when frame_index % N == 0
    lookahead_frames: int   # L: result applied at trigger + L (L <= N)
    history_frames: int     # how many frames up to the trigger `compute` sees

    def compute(self, frames: np.ndarray) -> Any:
        """Pure function of frames [history_frames, 16] (oldest first); returns an immutable result."""

    def apply(self, result: Any) -> None:
        """Audio thread: make `result` current (swap a reference, nothing more)."""


class FrameHistory:
    """The last `capacity` analysis frames, appended by the audio thread."""

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self.frames = np.zeros((capacity, N_FEATURES))
        self.count = 0

    def append(self, frame: np.ndarray) -> None:
        self.frames[self.count % self.capacity] = frame
        self.count += 1

    def window(self, end_count: int, n_frames: int) -> np.ndarray:
        """A copy of the `n_frames` frames ending with frame number end_count - 1 (zeros before start)."""
        first = end_count - n_frames
        numbers = np.arange(first, end_count)
        out = self.frames[numbers % self.capacity]  # one vectorised gather: little time under the GIL
        out[numbers < 0] = 0.0
        return out

    def reset(self) -> None:
        self.frames[:] = 0.0
        self.count = 0


class TaskSlot:
    """One task's mailbox: a request (trigger frame) and a result stamped with its trigger."""

    def __init__(self, task: FrameTask) -> None:
        if not 0 < task.lookahead_frames <= task.period_frames:
            raise ValueError(f"task {task.name}: need 0 < lookahead_frames <= period_frames")
        self.task = task
        self.requested_trigger = -1
        self.result: Any = None
        self.result_trigger = -1
        self.applied = 0
        self.misses = 0

    def reset(self) -> None:
        self.requested_trigger = -1
        self.result = None
        self.result_trigger = -1
        self.applied = 0
        self.misses = 0


class FrameScheduler:
    """Triggers tasks at fixed frames and applies their results at trigger + lookahead.

    `synchronous=True` (offline, tests) computes at the trigger; otherwise a worker thread
    watches `requested_trigger` and fills `result`/`result_trigger`.
    """

    def __init__(self, tasks: list[FrameTask], history: FrameHistory, synchronous: bool = True) -> None:
        self.slots = [TaskSlot(task) for task in tasks]
        self.history = history
        self.synchronous = synchronous

    def on_frame(self, frame_count: int) -> None:
        """Audio thread, after frame number frame_count - 1 was appended to the history."""
        for slot in self.slots:
            task = slot.task
            due_trigger = frame_count - task.lookahead_frames
            if due_trigger > 0 and due_trigger % task.period_frames == 0:
                if slot.result_trigger == due_trigger:
                    task.apply(slot.result)
                    slot.applied += 1
                else:
                    slot.misses += 1
            if frame_count % task.period_frames == 0:
                if self.synchronous:
                    self.run(slot, frame_count)
                else:
                    slot.requested_trigger = frame_count

    def run(self, slot: TaskSlot, trigger: int) -> None:
        """Compute a slot's result for `trigger` (the scheduler offline, a worker thread live)."""
        frames = self.history.window(trigger, slot.task.history_frames)
        slot.result = slot.task.compute(frames)
        slot.result_trigger = trigger

    @property
    def deadline_misses(self) -> int:
        return sum(slot.misses for slot in self.slots)

    def reset(self) -> None:
        for slot in self.slots:
            slot.reset()
