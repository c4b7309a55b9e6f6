"""A background task that tracks the player's tempo and key from the analysis frames.

Tempo: autocorrelation of the onset-strength curve over the last few seconds, searched from
60 to 200 BPM with a mild preference for moderate tempi. Key: the loudness-weighted chroma
profile correlated with the Krumhansl-Kessler major and minor profiles in all 12 rotations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.features.frames import CHROMA, LOUDNESS, ONSET, VOICING
from engine.rates import CONTROL_RATE_HZ

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class TempoKey:
    """The estimate in force; confidences are correlations in 0..1.

    A beat falls on absolute frame `beat_frame` and every `beat_period_frames` after it, so any
    consumer (the conductor, retrieval) can read the beat phase of any frame from it.
    """

    tempo_bpm: float
    tempo_confidence: float
    key_tonic: int          # pitch class, C = 0
    key_mode: str           # "major" or "minor"
    key_confidence: float
    beat_frame: int
    beat_period_frames: float

    @property
    def key_name(self) -> str:
        return f"{PITCH_CLASSES[self.key_tonic]} {self.key_mode}"

    def beat_phase(self, frame: int) -> float:
        """Position of `frame` within its beat, 0 (on the beat) to 1."""
        if self.beat_period_frames <= 0:
            return 0.0
        return ((frame - self.beat_frame) / self.beat_period_frames) % 1.0


def estimate_tempo(onset: np.ndarray, frame_rate_hz: float = CONTROL_RATE_HZ) -> tuple[float, float]:
    """(BPM, confidence) from an onset-strength curve by autocorrelation over 60..200 BPM.

    Vectorised (one FFT, one interpolation) so a worker thread holds the GIL only briefly.
    """
    curve = onset - onset.mean()
    n = len(curve)
    spectrum = np.fft.rfft(curve, 2 * n)
    autocorrelation = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if autocorrelation[0] <= 1e-12:
        return 0.0, 0.0
    bpms = np.arange(60.0, 200.5, 0.5)
    scores = np.interp(frame_rate_hz * 60.0 / bpms, np.arange(n), autocorrelation / autocorrelation[0])
    prior = np.exp(-0.5 * (np.log2(bpms / 110.0) / 0.9) ** 2)
    best = int(np.argmax(scores * prior))
    return float(bpms[best]), float(np.clip(scores[best], 0.0, 1.0))


def estimate_beat_offset(onset: np.ndarray, period_frames: float) -> float:
    """Frames from the end of `onset` back to its most recent beat, for a beat every
    `period_frames`: the offset whose comb of beats collects the most onset strength."""
    n = len(onset)
    if period_frames <= 0 or n < 2:
        return 0.0
    offsets = np.arange(0.0, period_frames, 1.0)
    beats = np.arange(0.0, n - 1, period_frames)  # 0, P, 2P, ... frames before the end
    positions = (n - 1) - offsets[:, None] - beats[None, :]
    strength = np.interp(positions, np.arange(n), onset, left=0.0)
    return float(offsets[int(np.argmax(strength.sum(axis=1)))])


def _key_templates() -> np.ndarray:
    """24 zero-mean, unit-norm rows: major keys C..B, then minor keys C..B."""
    rows = [np.roll(profile, tonic) for profile in (MAJOR_PROFILE, MINOR_PROFILE) for tonic in range(12)]
    templates = np.array(rows) - np.mean(rows, axis=1, keepdims=True)
    return templates / np.linalg.norm(templates, axis=1, keepdims=True)


KEY_TEMPLATES = _key_templates()


def estimate_key(chroma: np.ndarray, weights: np.ndarray) -> tuple[int, str, float]:
    """(tonic pitch class, mode, Pearson correlation) of the weighted mean chroma."""
    profile = weights @ chroma
    centred = profile - profile.mean()
    norm = np.linalg.norm(centred)
    if norm <= 1e-12:
        return 0, "major", 0.0
    correlations = KEY_TEMPLATES @ (centred / norm)
    best = int(np.argmax(correlations))
    return best % 12, "major" if best < 12 else "minor", max(float(correlations[best]), 0.0)


class TempoKeyTask:
    """Every 0.5 s, re-estimate tempo, beat and key from the last 8 s; in force 0.2 s later.

    Its published vector: tempo_bpm, tempo_confidence, tonic, mode (0 major, 1 minor),
    key_confidence, beat_period_frames, frames from the trigger back to the last beat.
    """

    name = "tempo-key"
    period_frames = 125
    lookahead_frames = 50
    history_frames = 2000
    result_size = 7

    def compute(self, frames: np.ndarray, out: np.ndarray, trigger: int = 0) -> None:
        tempo_bpm, tempo_confidence = estimate_tempo(frames[:, ONSET])
        voiced = frames[:, VOICING] >= 0.5
        weights = np.where(voiced, 10.0 ** (frames[:, LOUDNESS] / 20.0), 0.0)
        tonic, mode, key_confidence = estimate_key(frames[:, CHROMA], weights)
        period = CONTROL_RATE_HZ * 60.0 / tempo_bpm if tempo_bpm > 0 else 0.0
        out[:] = (tempo_bpm, tempo_confidence, tonic, 0.0 if mode == "major" else 1.0, key_confidence,
                  period, estimate_beat_offset(frames[:, ONSET], period))

    @staticmethod
    def decode(result: np.ndarray, trigger: int) -> TempoKey:
        """The TempoKey a published vector stands for (`trigger`: the frame it was computed at)."""
        tempo_bpm, tempo_confidence, tonic, mode, key_confidence, period, offset = result
        return TempoKey(float(tempo_bpm), float(tempo_confidence), int(tonic),
                        "major" if mode < 0.5 else "minor", float(key_confidence),
                        int(round(trigger - 1 - offset)), float(period))
