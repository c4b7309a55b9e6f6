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
    """The latest estimate; confidences are correlations in 0..1."""

    tempo_bpm: float
    tempo_confidence: float
    key_tonic: int          # pitch class, C = 0
    key_mode: str           # "major" or "minor"
    key_confidence: float

    @property
    def key_name(self) -> str:
        return f"{PITCH_CLASSES[self.key_tonic]} {self.key_mode}"


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
    """Every 0.5 s, re-estimate tempo and key from the last 8 s; applied 0.2 s later."""

    name = "tempo-key"
    period_frames = 125
    lookahead_frames = 50
    history_frames = 2000

    def __init__(self) -> None:
        self.current: TempoKey | None = None

    def compute(self, frames: np.ndarray) -> TempoKey:
        tempo_bpm, tempo_confidence = estimate_tempo(frames[:, ONSET])
        voiced = frames[:, VOICING] >= 0.5
        weights = np.where(voiced, 10.0 ** (frames[:, LOUDNESS] / 20.0), 0.0)
        tonic, mode, key_confidence = estimate_key(frames[:, CHROMA], weights)
        return TempoKey(tempo_bpm, tempo_confidence, tonic, mode, key_confidence)

    def apply(self, result: TempoKey) -> None:
        self.current = result

    def reset(self) -> None:
        self.current = None
