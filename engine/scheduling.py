"""Deadline-scheduled background tasks over the analysis frames (DESIGN.md section 9).

A task is triggered at fixed frame indices (every `period_frames`), computes from the frames up
to its trigger frame t, and its result comes into force exactly at frame t + `lookahead_frames`.
Offline the scheduler computes synchronously at the trigger; live, a worker in the control
process (realtime/workers.py) computes the same thing from the same frames, so both agree
sample for sample whenever no deadline is missed. A result that is not ready at its frame is a
deadline miss: it is counted and the previous result stays in force.

Everything the audio thread and the workers share lives in plain arrays that may be backed by
shared memory (`FrameHistory`, `ControlBus`): the audio thread never swaps an object, it only
switches an index. Memory order across processes is x86-64's (stores are seen in program
order): a writer fills the data first and publishes the index or stamp that covers it last.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from engine.features.frames import N_FEATURES

HISTORY_FRAMES = 8192


class FrameTask(Protocol):
    """A background computation over recent analysis frames, publishing a float64 vector."""

    name: str
    period_frames: int      # N: triggered when frame_index % N == 0
    lookahead_frames: int   # L: result in force from trigger + L (0 < L <= N)
    history_frames: int     # how many frames up to the trigger `compute` sees
    result_size: int        # length of the published vector

    def compute(self, frames: np.ndarray, out: np.ndarray, trigger: int = 0) -> None:
        """Pure function of frames [history_frames, 16] (oldest first, zeros before the start)
        writing the result vector into out [result_size]. May keep state between calls;
        `trigger` (the absolute number of the frame after the window) lets it cache work by frame."""


class FrameHistory:
    """Analysis frames by absolute frame number: row n % capacity holds frame n.

    `frames` [capacity, 16] float64 and `counter` [1] int64 (frames ever appended) may be views
    of shared memory: the audio thread appends (row first, counter after), any number of
    readers copy windows and check afterwards that nothing they copied was overwritten.
    """

    def __init__(self, capacity: int = HISTORY_FRAMES, frames: np.ndarray | None = None,
                 counter: np.ndarray | None = None) -> None:
        self.frames = np.zeros((capacity, N_FEATURES)) if frames is None else frames
        self.capacity = self.frames.shape[0]
        self.counter = np.zeros(1, dtype=np.int64) if counter is None else counter

    @property
    def count(self) -> int:
        return int(self.counter[0])

    def append(self, frame: np.ndarray) -> None:
        count = self.counter[0]
        self.frames[count % self.capacity] = frame
        self.counter[0] = count + 1

    def window(self, end_count: int, n_frames: int) -> np.ndarray | None:
        """A copy of the `n_frames` frames ending with frame number end_count - 1 (zeros before
        the start); None if the writer overwrote any of them before the copy finished."""
        if n_frames > self.capacity:
            raise ValueError(f"a window of {n_frames} frames exceeds the history of {self.capacity}")
        first = end_count - n_frames
        numbers = np.arange(first, end_count)
        out = self.frames[numbers % self.capacity]  # one vectorised gather: little time under the GIL
        out[numbers < 0] = 0.0
        if self.count - self.capacity > first:  # rows reused while (or before) we copied
            return None
        return out

    def reset(self) -> None:
        self.frames[:] = 0.0
        self.counter[0] = 0


# ControlBus.state columns (written by the audio thread only).
ACTIVE_ROW, REQUESTED_TRIGGER, APPLIED, MISSES = 0, 1, 2, 3
# ControlBus.worker columns (written by the task's worker only).
STALE_READS, FAILURES = 0, 1


class ControlBus:
    """Per task, two result rows and the trigger each was computed for; the audio thread switches
    `state[task, ACTIVE_ROW]` to a row whose stamp is due, exactly at trigger + lookahead.

    A worker writes into the row that is not in force: it invalidates that row's stamp, fills
    the row, then stamps it with its trigger. Arrays (all preallocated, shareable):
    rows [n_tasks, 2, width] float64, stamps [n_tasks, 2] int64, state [n_tasks, 4] int64,
    worker [n_tasks, 2] int64.
    """

    def __init__(self, tasks: list[FrameTask], arrays: dict[str, np.ndarray] | None = None) -> None:
        for task in tasks:
            if not 0 < task.lookahead_frames <= task.period_frames:
                raise ValueError(f"task {task.name}: need 0 < lookahead_frames <= period_frames")
        self.tasks = list(tasks)
        self.arrays = bus_arrays(tasks) if arrays is None else arrays
        self.rows = self.arrays["bus_rows"]
        self.stamps = self.arrays["bus_stamps"]
        self.state = self.arrays["bus_state"]
        self.worker = self.arrays["bus_worker"]
        if arrays is None:
            self.reset()  # attached arrays are reset by their owner (the processor's reset)

    def reset(self) -> None:
        self.rows[:] = 0.0
        self.stamps[:] = -1
        self.state[:] = 0
        self.state[:, ACTIVE_ROW] = -1
        self.state[:, REQUESTED_TRIGGER] = -1
        self.worker[:] = 0

    def current(self, index: int) -> tuple[np.ndarray, int] | None:
        """The result in force for task `index` and the trigger it came from; None before any."""
        row = int(self.state[index, ACTIVE_ROW])
        if row < 0:
            return None
        return self.rows[index, row, : self.tasks[index].result_size], int(self.stamps[index, row])

    def write(self, index: int, trigger: int, frames: np.ndarray) -> None:
        """Worker side: compute task `index` for `trigger` into the row not in force, then stamp it."""
        row = 1 if self.state[index, ACTIVE_ROW] == 0 else 0
        self.stamps[index, row] = -1
        task = self.tasks[index]
        task.compute(frames, self.rows[index, row, : task.result_size], trigger)
        self.stamps[index, row] = trigger

    def commit_due(self, index: int, due_trigger: int) -> None:
        """Audio thread: bring the result for `due_trigger` into force, or count a miss."""
        state = self.state
        active = state[index, ACTIVE_ROW]
        for row in (0, 1):
            if row != active and self.stamps[index, row] == due_trigger:
                state[index, ACTIVE_ROW] = row
                state[index, APPLIED] += 1
                return
        state[index, MISSES] += 1

    @property
    def deadline_misses(self) -> int:
        return int(self.state[:, MISSES].sum())


def bus_arrays(tasks: list[FrameTask]) -> dict[str, np.ndarray]:
    """Fresh (process-local) arrays for a ControlBus over `tasks`; see `bus_layout`."""
    return {name: np.zeros(shape, dtype=dtype) for name, shape, dtype in bus_layout(tasks)}


def bus_layout(tasks: list[FrameTask]) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of every ControlBus array, for a shared-memory arena."""
    n = max(1, len(tasks))
    width = max([task.result_size for task in tasks] + [1])
    return [
        ("bus_rows", (n, 2, width), "float64"),
        ("bus_stamps", (n, 2), "int64"),
        ("bus_state", (n, 4), "int64"),
        ("bus_worker", (n, 2), "int64"),
    ]


class FrameScheduler:
    """Triggers tasks at fixed frames and brings their results into force at trigger + lookahead.

    `synchronous=True` (offline, tests) computes at the trigger; otherwise a worker per task
    watches `bus.state[i, REQUESTED_TRIGGER]` and calls `run`.
    """

    def __init__(self, tasks: list[FrameTask], history: FrameHistory, synchronous: bool = True,
                 bus: ControlBus | None = None) -> None:
        self.tasks = list(tasks)
        self.history = history
        self.bus = ControlBus(self.tasks) if bus is None else bus
        self.synchronous = synchronous
        self._timing = [(task.period_frames, task.lookahead_frames) for task in self.tasks]

    def on_frame(self, frame_count: int) -> None:
        """Audio thread, after frame number frame_count - 1 was appended to the history."""
        bus = self.bus
        for index, (period, lookahead) in enumerate(self._timing):
            due_trigger = frame_count - lookahead
            if due_trigger > 0 and due_trigger % period == 0:
                bus.commit_due(index, due_trigger)
            if frame_count % period == 0:
                if self.synchronous:
                    self.run(index, frame_count)
                else:
                    bus.state[index, REQUESTED_TRIGGER] = frame_count

    def run(self, index: int, trigger: int) -> bool:
        """Compute task `index` for `trigger` (the scheduler offline, a worker live); False when
        its frames were overwritten before they were read (counted as a stale read)."""
        frames = self.history.window(trigger, self.tasks[index].history_frames)
        if frames is None:
            self.bus.worker[index, STALE_READS] += 1
            return False
        self.bus.write(index, trigger, frames)
        return True

    @property
    def deadline_misses(self) -> int:
        return self.bus.deadline_misses

    def reset(self) -> None:
        self.bus.reset()
