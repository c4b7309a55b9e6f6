"""Built-in reference voices: analysis-driven harmonic voices with fixed spectral shapes.

They follow the leader at a fixed interval (in semitones), at the leader's loudness, and
fall silent (within one frame) when the leader is unvoiced. They make the whole chain
audible before any model is trained, and serve as the sine-like baseline for model voices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from engine.features.frames import F0, LOUDNESS, VOICING
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

# Controller state slots (one float64 array per voice).
_NOTE_AGE_S, _NOTE_F0_HZ, _LEADER_F0_HZ = 0, 1, 2
_NEW_NOTE_CENTS = 60.0  # a pitch jump larger than this restarts a plucked note
# Early entry: YIN's voicing only clears its threshold once the whole window holds the new note
# (~20 ms), but its f0 is right well before. Two frames agreeing within this many cents, with
# some periodicity and a real level, let a voice enter up to two frames earlier.
_EARLY_CENTS = 25.0
_EARLY_MIN_VOICING = 0.1
_EARLY_MIN_LOUDNESS_DB = -50.0


@numba.njit(nogil=True, cache=True)
def reference_controls(
    frame: np.ndarray,
    interval_ratio: float,
    voicing_threshold: float,
    frame_s: float,
    pluck_decay_s: float,
    weights: np.ndarray,
    noise_gain: float,
    state: np.ndarray,
    amplitudes_out: np.ndarray,
    noise_out: np.ndarray,
) -> float:
    """Map one analysis frame to synth targets; returns the voice's f0 in Hz (0 = silent)."""
    leader_f0, previous_leader_f0 = frame[F0], state[_LEADER_F0_HZ]
    state[_LEADER_F0_HZ] = leader_f0
    steady = (
        leader_f0 > 0.0
        and previous_leader_f0 > 0.0
        and abs(1200.0 * np.log2(leader_f0 / previous_leader_f0)) < _EARLY_CENTS
        and frame[VOICING] > _EARLY_MIN_VOICING
        and frame[LOUDNESS] > _EARLY_MIN_LOUDNESS_DB
    )
    voiced = leader_f0 > 0.0 and (frame[VOICING] >= voicing_threshold or steady)
    if not voiced:
        amplitudes_out[:] = 0.0
        noise_out[:] = 0.0
        state[_NOTE_AGE_S] = 0.0
        state[_NOTE_F0_HZ] = 0.0
        return 0.0
    f0_hz = frame[F0] * interval_ratio
    previous = state[_NOTE_F0_HZ]
    if previous <= 0.0 or abs(1200.0 * np.log2(f0_hz / previous)) > _NEW_NOTE_CENTS:
        state[_NOTE_AGE_S] = 0.0
    state[_NOTE_F0_HZ] = f0_hz
    # A-weighted power in dB -> peak amplitude of a sine with that power (+3.01 dB).
    level = 10.0 ** ((frame[LOUDNESS] + 3.0103) / 20.0)
    if pluck_decay_s > 0.0:
        level *= np.exp(-state[_NOTE_AGE_S] / pluck_decay_s)
    state[_NOTE_AGE_S] += frame_s
    for h in range(weights.shape[0]):
        amplitudes_out[h] = level * weights[h]
    for b in range(noise_out.shape[0]):
        noise_out[b] = level * noise_gain
    return f0_hz


class ReferenceVoice:
    """A follower at `interval_semitones` from the leader with a built-in timbre."""

    def __init__(
        self,
        name: str,
        kind: str,
        interval_semitones: float,
        synth: VoiceSynth,
        *,
        n_harmonics: int,
        n_noise_bands: int,
        frame_s: float,
        voicing_threshold: float,
    ) -> None:
        timbre = TIMBRES[kind](n_harmonics)
        weights = timbre.harmonic_weights
        self.name = name
        self._weights = weights / np.sqrt(np.sum(weights**2))  # power-normalised
        self._interval_ratio = 2.0 ** (interval_semitones / 12.0)
        self._noise_gain = 10.0 ** (timbre.noise_db / 20.0)
        self._pluck_decay_s = timbre.pluck_decay_s
        self._frame_s = frame_s
        self._voicing_threshold = voicing_threshold
        self._synth = synth
        self._state = np.zeros(3)
        self._amplitudes = np.zeros(n_harmonics)
        self._noise = np.zeros(n_noise_bands)

    def set_interval(self, semitones: float) -> None:
        """Follow the leader at another interval from the next frame on."""
        self._interval_ratio = 2.0 ** (semitones / 12.0)

    def step(self, frame: np.ndarray) -> None:
        f0_hz = reference_controls(
            frame, self._interval_ratio, self._voicing_threshold, self._frame_s,
            self._pluck_decay_s, self._weights, self._noise_gain, self._state,
            self._amplitudes, self._noise,
        )
        self._synth.set_targets(f0_hz, self._amplitudes, self._noise)

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        self._synth.render(out, offset, count)

    def reset(self) -> None:
        self._state[:] = 0.0
        self._synth.reset()
