"""Pitch settling time of the live analyser, measured (DESIGN.md section 4, latency figures)."""

from __future__ import annotations

import math

import numpy as np

from engine.features.reference import F0_MAX_HZ, F0_MIN_HZ
from engine.features.streaming import StreamingAnalyzer

SETTLE_TOLERANCE_CENTS = 50.0
SETTLE_VOICING = 0.5
_ONSET_PHASES = 4  # onsets at 0, 1/4, 1/2 and 3/4 of a frame after a frame edge


def render_note_after_silence(
    sample_rate_hz: int, f0_hz: float, onset_sample: int, note_s: float = 0.2
) -> np.ndarray:
    """Silence, then from `onset_sample` a tone of peak about 0.5: harmonics 1..5 at 1/k,
    those below 0.45 sr only, starting abruptly at phase 0."""
    t = np.arange(int(round(note_s * sample_rate_hz))) / sample_rate_hz
    note = np.zeros_like(t)
    for k in range(1, 6):
        if k * f0_hz < 0.45 * sample_rate_hz:
            note += np.sin(2.0 * np.pi * k * f0_hz * t) / k
    return np.concatenate([np.zeros(onset_sample), 0.3 * note])


def measure_pitch_settle_ms(
    sample_rate_hz: int,
    f0_hz: float,
    *,
    f0_min_hz: float = F0_MIN_HZ,
    f0_max_hz: float = F0_MAX_HZ,
    tolerance_cents: float = SETTLE_TOLERANCE_CENTS,
) -> float:
    """Milliseconds from a note's onset (after silence) until the live f0 settles.

    Settled means: from that frame on, every frame has voicing >= 0.5 and f0 within
    `tolerance_cents` of `f0_hz`. A frame counts at the moment its last input sample arrives,
    ((i + 1) * hop - onset) samples after the onset. Returns the worst of four onset phases
    within a frame, or inf if the pitch never settles within the 200 ms note.
    """
    analyzer = StreamingAnalyzer(sample_rate_hz, f0_min_hz=f0_min_hz, f0_max_hz=f0_max_hz)
    hop = analyzer.frame_samples
    worst_ms = 0.0
    for phase in range(_ONSET_PHASES):
        onset = 25 * hop + phase * hop // _ONSET_PHASES
        frames = analyzer.analyze(render_note_after_silence(sample_rate_hz, f0_hz, onset))
        ends = (np.arange(frames.n_frames) + 1) * hop
        after = ends > onset
        with np.errstate(divide="ignore", invalid="ignore"):
            cents = 1200.0 * np.abs(np.log2(frames.f0_hz / f0_hz))
        good = (cents <= tolerance_cents) & (frames.voicing >= SETTLE_VOICING)
        bad = np.flatnonzero(after & ~good)
        if len(bad) and bad[-1] + 1 >= frames.n_frames:
            return math.inf
        first_settled = bad[-1] + 1 if len(bad) else int(np.argmax(after))
        worst_ms = max(worst_ms, (ends[first_settled] - onset) * 1000.0 / sample_rate_hz)
    return worst_ms
