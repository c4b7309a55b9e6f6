"""A follower voice as a part (what to play) played by an instrument (how it sounds).

Each control frame the part source fills one part frame (engine/parts.py) and the instrument
turns it into synth controls for its slots (one per note, so a chord is several instances of
one timbre stepped in one call); `render` adds the instrument's slots into the voice's row.
The config chooses both per voice. Voices whose part reads the control bus (a task's plan)
are attached to it, and to the processor's frame clock, once when the processor is built.
"""

from __future__ import annotations

import numpy as np

from engine.parts import PART_ACTIVE, PART_F0, new_part_frame


class PartVoice:
    """Voice protocol (engine/voices/base.py) over a part source and an instrument."""

    def __init__(self, name: str, part, instrument) -> None:  # noqa: ANN001 (part source, instrument)
        self.name = name
        self.part = part
        self.instrument = instrument
        self._part_frame = new_part_frame()
        self._clock = np.zeros(1, dtype=np.int64)

    def attach(self, bus, tasks: list, clock: np.ndarray) -> None:  # noqa: ANN001 (ControlBus)
        """Read frame numbers from `clock` [1] and, for a plan part, plans from `bus`."""
        self._clock = clock
        if hasattr(self.part, "attach"):
            self.part.attach(bus, tasks)

    @property
    def part_frame(self) -> np.ndarray:
        """The part frame it plays now [4, MAX_NOTES] (read it, never write it)."""
        return self._part_frame

    def adopt_part_frame(self, part_frame: np.ndarray) -> None:
        """Play from `part_frame` [4, MAX_NOTES] (a group's view of its stacked part frames)."""
        part_frame[:] = self._part_frame
        self._part_frame = part_frame

    @property
    def sounding_f0_hz(self) -> float:
        """The pitch of its first note now (0 when silent), for meters and displays."""
        return float(self._part_frame[PART_F0, 0]) if self._part_frame[PART_ACTIVE, 0] else 0.0

    def step(self, frame: np.ndarray) -> None:
        self.part.fill(frame, int(self._clock[0]), self._part_frame)
        self.instrument.step(self._part_frame)

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        self.instrument.render(out, offset, count)

    def reset(self) -> None:
        self.part.reset()
        self.instrument.reset()
