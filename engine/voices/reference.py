"""Built-in reference voices: analysis-driven harmonic voices with fixed spectral shapes.

A reference instrument plays whatever part it is given (engine/parts.py; today the leader at
a fixed interval, at the leader's loudness, silent within one frame when the leader is
unvoiced). They make the whole chain audible before any model is trained, and serve as the
sine-like baseline for model voices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from engine.parts import PART_ACTIVE, PART_F0, PART_LOUDNESS
from engine.synth.voice_synth import VoiceSynth


@dataclass(frozen=True)
class Timbre:
    """A fixed spectral recipe: harmonic weights, noise floor and a pluck decay (0 = sustained)."""

    harmonic_weights: np.ndarray
    noise_db: float
    pluck_decay_s: float


def _rolloff(n_harmonics: int, exponent: float) -> np.ndarray:
    return 1.0 / np.arange(1, n_harmonics + 1) ** exponent


def _organ(n_harmonics: int) -> np.ndarray:
    weights = np.zeros(n_harmonics)
    for harmonic, level in ((1, 1.0), (2, 0.7), (3, 0.5), (4, 0.35), (6, 0.2), (8, 0.15)):
        if harmonic <= n_harmonics:
            weights[harmonic - 1] = level
    return weights


def _bowed(n_harmonics: int) -> np.ndarray:
    h = np.arange(1, n_harmonics + 1)
    body = 1.0 + 0.8 * np.exp(-(((np.log2(h) - 1.6) / 0.7) ** 2))  # a body resonance near h=3
    return body / h


TIMBRES = {
    "reference:organ": lambda n: Timbre(_organ(n), noise_db=-60.0, pluck_decay_s=0.0),
    "reference:bowed-strings": lambda n: Timbre(_bowed(n), noise_db=-34.0, pluck_decay_s=0.0),
    "reference:plucked-bass": lambda n: Timbre(_rolloff(n, 1.6), noise_db=-50.0, pluck_decay_s=0.9),
}

# Slot state columns (one row per slot).
_NOTE_AGE_S, _NOTE_F0_HZ = 0, 1
_NEW_NOTE_CENTS = 60.0  # a pitch jump larger than this restarts a plucked note


@numba.njit(nogil=True, cache=True, inline="always")
def note_controls(
    part: np.ndarray, k: int, frame_s: float, pluck_decay_s: float, weights: np.ndarray,
    noise_gain: float, state: np.ndarray, amplitudes: np.ndarray, noise: np.ndarray,
) -> float:
    """Synth targets of one slot from note k of a part frame (engine/parts.py): fills
    `amplitudes` [n_harmonics] and `noise` [n_bands], updates the slot's `state` [2] and
    returns its f0 (0 = silent)."""
    if k >= part.shape[1] or part[PART_ACTIVE, k] < 0.5:
        amplitudes[:] = 0.0
        noise[:] = 0.0
        state[_NOTE_AGE_S] = 0.0
        state[_NOTE_F0_HZ] = 0.0
        return 0.0
    f0_hz = part[PART_F0, k]
    previous = state[_NOTE_F0_HZ]
    if previous <= 0.0 or abs(1200.0 * np.log2(f0_hz / previous)) > _NEW_NOTE_CENTS:
        state[_NOTE_AGE_S] = 0.0
    state[_NOTE_F0_HZ] = f0_hz
    # A-weighted power in dB -> peak amplitude of a sine with that power (+3.01 dB).
    level = 10.0 ** ((part[PART_LOUDNESS, k] + 3.0103) / 20.0)
    if pluck_decay_s > 0.0:
        level *= np.exp(-state[_NOTE_AGE_S] / pluck_decay_s)
    state[_NOTE_AGE_S] += frame_s
    for h in range(weights.shape[0]):
        amplitudes[h] = level * weights[h]
    for b in range(noise.shape[0]):
        noise[b] = level * noise_gain
    return f0_hz


@numba.njit(nogil=True, cache=True)
def reference_slot_controls(
    part: np.ndarray,
    frame_s: float,
    pluck_decay_s: float,
    weights: np.ndarray,
    noise_gain: float,
    state: np.ndarray,
    amplitudes_out: np.ndarray,
    noise_out: np.ndarray,
    f0_out: np.ndarray,
) -> None:
    """Synth targets for every slot k from note k of one part frame (engine/parts.py).

    state [slots, 2], amplitudes_out [slots, n_harmonics], noise_out [slots, n_bands] and
    f0_out [slots] (0 = silent) are the instrument's preallocated arrays.
    """
    for k in range(f0_out.shape[0]):
        f0_out[k] = note_controls(part, k, frame_s, pluck_decay_s, weights, noise_gain,
                                  state[k], amplitudes_out[k], noise_out[k])


class ReferenceInstrument:
    """A built-in timbre with one synth per slot: slot k plays note k of the part it is given,
    all slots' controls in one compiled call per frame."""

    def __init__(self, kind: str, synths: list[VoiceSynth], *, n_harmonics: int, n_noise_bands: int,
                 frame_s: float) -> None:
        timbre = TIMBRES[kind](n_harmonics)
        weights = timbre.harmonic_weights
        slots = len(synths)
        self._weights = weights / np.sqrt(np.sum(weights**2))  # power-normalised
        self._noise_gain = 10.0 ** (timbre.noise_db / 20.0)
        self._pluck_decay_s = timbre.pluck_decay_s
        self._frame_s = frame_s
        self._synths = synths
        self._state = np.zeros((slots, 2))
        self._amplitudes = np.zeros((slots, n_harmonics))
        self._noise = np.zeros((slots, n_noise_bands))
        self._f0 = np.zeros(slots)

    def step(self, part: np.ndarray) -> None:
        reference_slot_controls(
            part, self._frame_s, self._pluck_decay_s, self._weights, self._noise_gain,
            self._state, self._amplitudes, self._noise, self._f0,
        )
        for k, synth in enumerate(self._synths):
            synth.set_targets(self._f0[k], self._amplitudes[k], self._noise[k])

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        for synth in self._synths:
            synth.render(out, offset, count)

    @property
    def synths(self) -> list[VoiceSynth]:
        """Its dry synths, slot by slot (a synth bank may hold their state)."""
        return self._synths

    @property
    def timbre_constants(self) -> tuple[np.ndarray, float, float, float]:
        """(power-normalised harmonic weights, noise gain, pluck decay in s, frame in s)."""
        return self._weights, self._noise_gain, self._pluck_decay_s, self._frame_s

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Per-slot state by name, [slots, ...] each (engine/synth/stacking.py)."""
        return {"state": self._state, "amplitudes": self._amplitudes, "noise": self._noise, "f0": self._f0}

    def adopt_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Keep the per-slot state in `arrays` (a group's views of `state_arrays`)."""
        self._state, self._amplitudes, self._noise, self._f0 = (
            arrays["state"], arrays["amplitudes"], arrays["noise"], arrays["f0"])

    def reset(self) -> None:
        self._state[:] = 0.0
        for synth in self._synths:
            synth.reset()
