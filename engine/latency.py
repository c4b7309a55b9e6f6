"""Onset latency measured through the block processor (DESIGN.md section 4), never assumed."""

from __future__ import annotations

import numpy as np

from engine.config import TuttiConfig

NOTE_HZ = 220.0
SILENCE_S = 0.3
NOTE_S = 0.6
ONSET_THRESHOLD_DB = -20.0  # output onset: envelope reaches this, relative to its steady level


def _note(sample_rate_hz: int) -> tuple[np.ndarray, int]:
    onset = int(SILENCE_S * sample_rate_hz)
    t = np.arange(int(NOTE_S * sample_rate_hz)) / sample_rate_hz
    tone = sum(0.25 / h * np.sin(2 * np.pi * h * NOTE_HZ * t) for h in range(1, 6))
    audio = np.concatenate([np.zeros(onset), tone]).astype(np.float32)
    return audio, onset


def causal_rms(mix: np.ndarray, window: int) -> np.ndarray:
    """Causal RMS of a stereo signal over `window` samples."""
    power = np.cumsum(np.concatenate([np.zeros(window), (mix.astype(np.float64) ** 2).sum(axis=1)]))
    return np.sqrt(np.maximum(power[window:] - power[:-window], 0.0) / window)


def measure_onset_latency_samples(config: TuttiConfig) -> int:
    """Samples from a note's first input sample to the mix reaching -20 dB of its steady level.

    Renders a 220 Hz note after silence through a fresh processor at the config's block size.
    """
    from engine.processor import BlockProcessor

    sample_rate_hz = config.engine.sample_rate_hz
    audio, onset = _note(sample_rate_hz)
    processor = BlockProcessor(config)
    _, mix = processor.render(audio, config.engine.block_samples)
    envelope = causal_rms(mix, max(1, sample_rate_hz // 1000))
    steady = np.median(envelope[onset + int(0.2 * sample_rate_hz):])
    if steady <= 0:
        return -1
    above = np.nonzero(envelope[onset:] >= steady * 10 ** (ONSET_THRESHOLD_DB / 20))[0]
    return int(above[0]) if above.size else -1
