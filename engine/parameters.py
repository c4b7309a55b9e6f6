"""The live parameters a GUI fader, a MIDI knob or the terminal can move, by stable name.

Each parameter writes one plain float into the processor's published mixer arrays (last write
wins, no lock); the audio thread slews toward it, so any thread may call `set_value`.
Names: `voices.<name>.gain_db|pan|mute|solo`, `mixer.master_gain_db`, `mixer.input_monitor_db`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import TuttiError
from engine.mixer import GAIN, INPUT_MONITOR, MASTER_GAIN, MUTE, PAN, SOLO, db_to_gain


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: where it lives, its range in user units, and how it is stored."""

    name: str
    array: np.ndarray
    row: int
    column: int
    minimum: float
    maximum: float
    unit: str  # "dB" values are stored as linear gain; "switch" as 0/1

    def to_stored(self, value: float) -> float:
        value = min(max(value, self.minimum), self.maximum)
        if self.unit == "dB":
            return db_to_gain(value)
        if self.unit == "switch":
            return 1.0 if value >= 0.5 else 0.0
        return value

    def from_stored(self, stored: float) -> float:
        if self.unit == "dB":
            return max(self.minimum, 20.0 * np.log10(stored)) if stored > 0 else self.minimum
        return float(stored)


class LiveParameters:
    """Name -> parameter map over a processor's `MixerParams`."""

    def __init__(self, voice_names: tuple[str, ...], voice_params: np.ndarray, master_params: np.ndarray) -> None:
        specs = []
        for row, voice in enumerate(voice_names):
            specs += [
                ParameterSpec(f"voices.{voice}.gain_db", voice_params, row, GAIN, -60.0, 12.0, "dB"),
                ParameterSpec(f"voices.{voice}.pan", voice_params, row, PAN, -1.0, 1.0, ""),
                ParameterSpec(f"voices.{voice}.mute", voice_params, row, MUTE, 0.0, 1.0, "switch"),
                ParameterSpec(f"voices.{voice}.solo", voice_params, row, SOLO, 0.0, 1.0, "switch"),
            ]
        master = master_params.reshape(1, -1)
        specs += [
            ParameterSpec("mixer.master_gain_db", master, 0, MASTER_GAIN, -60.0, 12.0, "dB"),
            ParameterSpec("mixer.input_monitor_db", master, 0, INPUT_MONITOR, -120.0, 0.0, "dB"),
        ]
        self._specs = {spec.name: spec for spec in specs}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def spec(self, name: str) -> ParameterSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise TuttiError(
                f"unknown parameter {name}: known parameters are {', '.join(self._specs)}"
            ) from None

    def set_value(self, name: str, value: float) -> None:
        """Publish `value` in user units (dB, pan -1..1, switch 0/1), clamped to the range."""
        spec = self.spec(name)
        try:
            value = float(value)
        except (OverflowError, TypeError, ValueError):
            value = float("nan")
        if not math.isfinite(value):
            raise TuttiError(f"{name} = {value} is not a finite number: give a value in {spec.minimum:g}..{spec.maximum:g}")
        spec.array[spec.row, spec.column] = spec.to_stored(value)

    def set_normalized(self, name: str, position: float) -> None:
        """Publish a control position 0..1 (a MIDI CC / 127, a fader) mapped linearly onto the range."""
        spec = self.spec(name)
        self.set_value(name, spec.minimum + min(max(position, 0.0), 1.0) * (spec.maximum - spec.minimum))

    def value(self, name: str) -> float:
        spec = self.spec(name)
        return spec.from_stored(spec.array[spec.row, spec.column])
