"""Parts: what a follower plays, decided once per control frame, apart from how it sounds.

A part frame is float64 [4, MAX_NOTES]: rows PART_F0 (Hz), PART_LOUDNESS (dB, A-weighted as
the features), PART_ONSET (0..1, a new note starts this frame) and PART_ACTIVE (1 = the note
sounds), one column per note, so a harmony part carries a chord. A part source fills it on the
audio thread, allocation-free: the leader-interval rule here, a task's plan on the control bus
(`PlanPart`: the conductor, a retrieved continuation) later. An instrument (engine/voices)
turns a part frame into synth controls, one slot per note.

A plan is a task's result vector read as [horizon_frames, 4, MAX_NOTES] (the part rows above):
computed from the frames up to trigger t, it covers absolute frames [t + L, t + L + horizon),
L the task's lookahead, and comes into force exactly at t + L.
"""

from __future__ import annotations

import numba
import numpy as np

from engine.features.frames import F0, LOUDNESS, ONSET, VOICING
from engine.scheduling import ACTIVE_ROW

MAX_NOTES = 4
PART_F0, PART_LOUDNESS, PART_ONSET, PART_ACTIVE = 0, 1, 2, 3
PART_ROWS = 4
SILENT_DB = -100.0

# Early entry: YIN's voicing only clears its threshold once the whole window holds the new note
# (~20 ms), but its f0 is right well before. Two frames agreeing within this many cents, with
# some periodicity and a real level, let a voice enter up to two frames earlier.
_EARLY_CENTS = 25.0
_EARLY_MIN_VOICING = 0.1
_EARLY_MIN_LOUDNESS_DB = -50.0


def new_part_frame() -> np.ndarray:
    """A silent part frame (every note inactive)."""
    part = np.zeros((PART_ROWS, MAX_NOTES))
    part[PART_LOUDNESS] = SILENT_DB
    return part


def plan_size(horizon_frames: int) -> int:
    """Length of a task result vector holding a plan of `horizon_frames` part frames."""
    return horizon_frames * PART_ROWS * MAX_NOTES


@numba.njit(nogil=True, cache=True)
def leader_interval_part(
    frame: np.ndarray, ratio: float, voicing_threshold: float, state: np.ndarray, part: np.ndarray
) -> None:
    """One note at the leader's f0 times `ratio`, at the leader's loudness, sounding while the
    leader is voiced (or steady: early entry). state [1] holds the previous frame's leader f0."""
    leader_f0, previous = frame[F0], state[0]
    state[0] = leader_f0
    steady = (
        leader_f0 > 0.0
        and previous > 0.0
        and abs(1200.0 * np.log2(leader_f0 / previous)) < _EARLY_CENTS
        and frame[VOICING] > _EARLY_MIN_VOICING
        and frame[LOUDNESS] > _EARLY_MIN_LOUDNESS_DB
    )
    voiced = leader_f0 > 0.0 and (frame[VOICING] >= voicing_threshold or steady)
    for k in range(part.shape[1]):
        part[PART_F0, k] = 0.0
        part[PART_LOUDNESS, k] = SILENT_DB
        part[PART_ONSET, k] = 0.0
        part[PART_ACTIVE, k] = 0.0
    if voiced:
        part[PART_F0, 0] = leader_f0 * ratio
        part[PART_LOUDNESS, 0] = frame[LOUDNESS]
        part[PART_ONSET, 0] = frame[ONSET]
        part[PART_ACTIVE, 0] = 1.0


class LeaderIntervalPart:
    """The leader at a fixed interval (in semitones): today's rule for every follower."""

    def __init__(self, interval_semitones: float, voicing_threshold: float) -> None:
        self._ratio = 2.0 ** (interval_semitones / 12.0)
        self._threshold = voicing_threshold
        self._state = np.zeros(1)

    def fill(self, frame: np.ndarray, frame_index: int, part: np.ndarray) -> None:
        leader_interval_part(frame, self._ratio, self._threshold, self._state, part)

    @property
    def rule(self) -> tuple[float, float]:
        """(frequency ratio, voicing threshold): what a group's kernel needs to fill it."""
        return self._ratio, self._threshold

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Its state by name (engine/synth/stacking.py): the previous leader f0 [1]."""
        return {"previous_f0": self._state}

    def adopt_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Keep the state in `arrays` (a group's view of `state_arrays`)."""
        self._state = arrays["previous_f0"]

    def reset(self) -> None:
        self._state[:] = 0.0


class PlanPart:
    """Part frames from the plan in force for the task named `task_name` on the control bus.

    Frame n plays row n - (trigger + lookahead) of the plan (the one at `offset` in the task's
    vector, for a task that plans several parts); outside the plan's horizon (no plan yet, or a
    late worker), every note is inactive. `attach` binds it to the processor's bus.
    """

    def __init__(self, task_name: str, horizon_frames: int, offset: int = 0) -> None:
        self.task_name = task_name
        self._horizon = horizon_frames
        self._size = plan_size(horizon_frames)
        self._offset = offset  # where this part's plan starts in the task's vector (one of several roles)
        self._silent = new_part_frame()
        self._bus = None
        self._task = 0
        self._lookahead = 0

    def attach(self, bus, tasks: list) -> None:  # noqa: ANN001 (engine.scheduling.ControlBus)
        names = [task.name for task in tasks]
        self._task = names.index(self.task_name)
        if tasks[self._task].result_size < self._offset + self._size:
            raise ValueError(f"task {self.task_name} publishes {tasks[self._task].result_size} values, "
                             f"a plan of {self._horizon} frames at {self._offset} needs {self._offset + self._size}")
        self._bus = bus
        self._lookahead = tasks[self._task].lookahead_frames

    def fill(self, frame: np.ndarray, frame_index: int, part: np.ndarray) -> None:
        bus = self._bus
        if bus is not None:
            row = bus.state[self._task, ACTIVE_ROW]
            if row >= 0:
                offset = frame_index - (bus.stamps[self._task, row] + self._lookahead)
                if 0 <= offset < self._horizon:
                    plan = bus.rows[self._task, row, self._offset : self._offset + self._size]
                    part[:] = plan.reshape(self._horizon, PART_ROWS, MAX_NOTES)[offset]
                    return
        part[:] = self._silent

    def reset(self) -> None:
        pass
