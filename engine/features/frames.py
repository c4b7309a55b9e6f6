"""The feature frame layout, version 1 (DESIGN.md section 4).

One row per 4 ms control frame; frame i is computed once input samples [0, (i+1)*hop) exist,
so its analysis windows end at sample (i+1)*hop - 1 and it is stamped with that sample's time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE_VERSION = 1
FEATURE_NAMES: tuple[str, ...] = (
    "f0_hz",
    "voicing",
    "loudness_db",
    "onset",
    *(f"chroma_{pitch_class}" for pitch_class in range(12)),
)
N_FEATURES = 16

F0 = 0
VOICING = 1
LOUDNESS = 2
ONSET = 3
CHROMA = slice(4, 16)

assert len(FEATURE_NAMES) == N_FEATURES


@dataclass(frozen=True)
class FeatureFrames:
    """Features of a signal: `values` [n_frames, N_FEATURES] float64, columns as FEATURE_NAMES.

    `frame_samples` is the hop in samples at `sample_rate_hz` (192 at 48 kHz).
    """

    values: np.ndarray
    sample_rate_hz: int
    frame_samples: int

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def f0_hz(self) -> np.ndarray:
        """Best f0 estimate in Hz for every frame; zero it where `voicing` < 0.5."""
        return self.values[:, F0]

    @property
    def voicing(self) -> np.ndarray:
        """Periodicity in 0..1 (1 = perfectly periodic)."""
        return self.values[:, VOICING]

    @property
    def loudness_db(self) -> np.ndarray:
        """A-weighted power in dB re full-scale mean square, floor -100 dB."""
        return self.values[:, LOUDNESS]

    @property
    def onset(self) -> np.ndarray:
        """Spectral-flux onset strength, >= 0."""
        return self.values[:, ONSET]

    @property
    def chroma(self) -> np.ndarray:
        """[n_frames, 12] pitch-class energy (C = 0), each row summing to 1 or all zero."""
        return self.values[:, CHROMA]

    @property
    def times_s(self) -> np.ndarray:
        """Time in seconds of the last input sample each frame has seen."""
        ends = (np.arange(self.n_frames) + 1) * self.frame_samples - 1
        return ends / float(self.sample_rate_hz)
