"""The conductor as a scheduled task: every 40 ms, the leader's last 2.56 s in, each role's plan out.

Its published vector is len(ROLES) plans of HORIZON_FRAMES part frames (engine/parts.py), role
after role; a voice with `role = "bass"` plays the bass plan through a `PlanPart` at that
role's offset. The followers' loudness moves with the player's level where it leaves the range
the training leaders played in (a microphone's gain), rather than staying at the corpus's. Live it runs on its own worker thread in the control process; offline the
scheduler runs it at the trigger, so `perform` and `live` plan the same notes. A leader
silent for SILENCE_STEPS makes every role rest; a prediction that is not finite is dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.conductor.contract import (
    HISTORY_FRAMES, HORIZON_FRAMES, LOOKAHEAD_FRAMES, PERIOD_FRAMES, ROLES, unscale_loudness,
)
from engine.conductor.inputs import StepInputs, input_slices
from engine.conductor.plans import grid_starts, role_planners
from engine.models.conductor import DEFAULT_CONDUCTOR, ConductorRunner, load_conductor_info
from engine.parts import MAX_NOTES, PART_ROWS, PlanPart, plan_size

TASK_NAME = "conductor"
SILENCE_STEPS = 50   # 2 s without a voiced leader step: the followers rest
_VOICED_COLUMN = input_slices()["voiced"].start
_LOUDNESS_COLUMN = input_slices()["loudness"].start
LEVEL_DEADZONE_DB = 10.0  # about the spread of the training leaders' levels (8.9 dB)
LEVEL_RANGE_DB = 30.0


def conductor_model_path(model: str) -> Path:
    """The configured conductor model: a path, or "" for the shipped one."""
    return Path(model).expanduser() if model else DEFAULT_CONDUCTOR


def role_part(role: str) -> PlanPart:
    """The part source of a voice that plays `role` from the conductor's plans."""
    return PlanPart(TASK_NAME, HORIZON_FRAMES, offset=ROLES.index(role) * plan_size(HORIZON_FRAMES))


class ConductorTask:
    """The FrameTask of the conductor (engine/scheduling.py)."""

    name = TASK_NAME
    period_frames = PERIOD_FRAMES
    lookahead_frames = LOOKAHEAD_FRAMES
    history_frames = HISTORY_FRAMES
    result_size = len(ROLES) * plan_size(HORIZON_FRAMES)

    def __init__(self, model_path: Path) -> None:
        self.info = load_conductor_info(model_path)
        self._runner: ConductorRunner | None = None  # opened on first use, in the thread that runs it
        self._inputs = StepInputs()
        self._planners = role_planners()

    def warm_up(self) -> None:
        """Open the ORT session and run it once, so the first live call is not the slow one."""
        self._ensure_runner().run(np.zeros_like(self._inputs.context))

    def _ensure_runner(self) -> ConductorRunner:
        if self._runner is None:
            self._runner = ConductorRunner(self.info)
        return self._runner

    def compute(self, frames: np.ndarray, out: np.ndarray, trigger: int = 0) -> None:
        context = self._inputs.at(frames, trigger)
        bins = self._ensure_runner().run(context)
        silent = not np.any(context[-SILENCE_STEPS:, _VOICED_COLUMN] > 0.0) or not np.all(np.isfinite(bins))
        plans = out.reshape(len(ROLES), HORIZON_FRAMES, PART_ROWS, MAX_NOTES)
        starts = grid_starts(self._inputs.estimate, trigger)
        offset = self._level_offset(context)
        bins = np.nan_to_num(bins)
        for planner, plan in zip(self._planners, plans):
            planner.plan(bins, plan, silent, starts, offset)

    def _level_offset(self, context: np.ndarray) -> float:
        """dB the player's level (the context's voiced steps) lies beyond the range the training
        leaders played in (their mean +- LEVEL_DEADZONE_DB): the followers play that much louder or
        softer, so the ensemble follows a microphone's gain, but not a leader's timbre within the
        range (the corpus's leaders differ by instrument, its followers not with them)."""
        voiced = context[:, _VOICED_COLUMN] > 0.5
        if not voiced.any():
            return 0.0
        level = float(np.mean(unscale_loudness(context[voiced, _LOUDNESS_COLUMN])))
        beyond = level - self.info.leader_loudness_db
        beyond = np.sign(beyond) * max(abs(beyond) - LEVEL_DEADZONE_DB, 0.0)
        return float(np.clip(beyond, -LEVEL_RANGE_DB, LEVEL_RANGE_DB))

    def reset(self) -> None:
        self._inputs.reset()
        for planner in self._planners:
            planner.reset()
