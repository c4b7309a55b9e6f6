"""Transposition: the same window played k semitones higher, inputs and targets alike.

Composed music is mostly in a few keys; shifting each training window by a random interval
(within a fifth either way) teaches the conductor relative harmony rather than absolute
pitches. The leader's pitch, pitch class, chroma and key move; loudness, onsets and tempo do
not; note classes move within their role's range (an octave folded back where they leave it),
the harmony's pitch classes rotate and its register shifts.
"""

from __future__ import annotations

import numpy as np

from engine.conductor.contract import NOTE_RANGES, REGISTER_SPAN, n_note_classes
from engine.conductor.inputs import input_slices

MAX_SHIFT = 6
_IN = input_slices()


def transpose(inputs: np.ndarray, targets: dict[str, np.ndarray], shift: int) -> None:
    """Shift one window (inputs [T, N], targets [T, H, ...]) up by `shift` semitones, in place."""
    if shift == 0:
        return
    voiced = inputs[:, _IN["voiced"]][:, 0] > 0
    inputs[voiced, _IN["pitch"].start] += shift / 12.0
    for name in ("pitch_class", "chroma"):
        inputs[:, _IN[name]] = np.roll(inputs[:, _IN[name]], shift, axis=1)
    key = _IN["key"]
    inputs[:, key.start : key.start + 12] = np.roll(inputs[:, key.start : key.start + 12], shift, axis=1)
    inputs[:, key.start + 12 : key.stop] = np.roll(inputs[:, key.start + 12 : key.stop], shift, axis=1)
    for role in NOTE_RANGES:
        classes = targets[f"{role}_note"]
        rest = n_note_classes(role) - 1
        moved = classes + shift
        span = rest  # pitches in the range
        moved = np.where(moved >= span, moved - 12, np.where(moved < 0, moved + 12, moved))
        targets[f"{role}_note"] = np.where(classes == rest, rest, moved)
    targets["harmony_pitch_classes"] = np.roll(targets["harmony_pitch_classes"], shift, axis=-1)
    targets["harmony_register"] = targets["harmony_register"] + np.float32(shift / REGISTER_SPAN)


def random_shift(rng: np.random.Generator) -> int:
    return int(rng.integers(-MAX_SHIFT + 1, MAX_SHIFT + 1))
