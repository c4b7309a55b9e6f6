"""Analytic test signals with known pitch, loudness and onsets, shared by the whole test suite.

Every generator takes keyword arguments with units (`sample_rate_hz`, `duration_s`, `f0_hz`),
returns float64 mono audio of round(duration_s * sample_rate_hz) samples, and draws any
randomness from `np.random.default_rng(seed)`, so every call is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def n_samples(sample_rate_hz: int, duration_s: float) -> int:
    """Samples in `duration_s` seconds."""
    return int(round(duration_s * sample_rate_hz))


def time_axis(sample_rate_hz: int, duration_s: float) -> np.ndarray:
    """Sample times in seconds."""
    return np.arange(n_samples(sample_rate_hz, duration_s)) / sample_rate_hz


def silence(*, sample_rate_hz: int, duration_s: float) -> np.ndarray:
    """All zeros."""
    return np.zeros(n_samples(sample_rate_hz, duration_s))


def additive_tone(
    *,
    f0_hz: float | np.ndarray,
    harmonic_amplitudes: Sequence[float],
    sample_rate_hz: int,
    duration_s: float,
    amplitude: float = 0.5,
    max_harmonic_hz: float | None = None,
) -> np.ndarray:
    """Sum of sine harmonics k*f0 with the given relative amplitudes, scaled by `amplitude`.

    `f0_hz` is a constant or a per-sample array (phase is its running integral). Harmonics at or
    above `max_harmonic_hz` (default: 0.95 x Nyquist) are left out, judged at the highest f0.
    """
    n = n_samples(sample_rate_hz, duration_s)
    f0 = np.broadcast_to(np.asarray(f0_hz, dtype=np.float64), (n,))
    limit = 0.95 * sample_rate_hz / 2 if max_harmonic_hz is None else max_harmonic_hz
    phase = 2.0 * np.pi * (np.cumsum(f0) - f0[0]) / sample_rate_hz
    top_f0 = float(np.max(f0)) if n else 0.0
    out = np.zeros(n)
    for k, gain in enumerate(harmonic_amplitudes, start=1):
        if k * top_f0 < limit:
            out += gain * np.sin(k * phase)
    return amplitude * out


def sine(
    *,
    f0_hz: float,
    sample_rate_hz: int,
    duration_s: float,
    amplitude: float = 0.5,
) -> np.ndarray:
    """A sine of peak `amplitude` starting at phase 0."""
    return additive_tone(
        f0_hz=f0_hz,
        harmonic_amplitudes=[1.0],
        sample_rate_hz=sample_rate_hz,
        duration_s=duration_s,
        amplitude=amplitude,
    )


def sawtooth(
    *,
    f0_hz: float | np.ndarray,
    sample_rate_hz: int,
    duration_s: float,
    amplitude: float = 0.5,
    max_harmonic_hz: float | None = None,
) -> np.ndarray:
    """Band-limited sawtooth: harmonics 2/(pi k) below `max_harmonic_hz` (peak about `amplitude`)."""
    limit = 0.95 * sample_rate_hz / 2 if max_harmonic_hz is None else max_harmonic_hz
    top_f0 = float(np.max(f0_hz))
    count = max(1, int(np.ceil(limit / top_f0)))
    return additive_tone(
        f0_hz=f0_hz,
        harmonic_amplitudes=[2.0 / (np.pi * k) for k in range(1, count + 1)],
        sample_rate_hz=sample_rate_hz,
        duration_s=duration_s,
        amplitude=amplitude,
        max_harmonic_hz=limit,
    )


def weak_fundamental_tone(
    *,
    f0_hz: float,
    sample_rate_hz: int,
    duration_s: float,
    amplitude: float = 0.5,
    fundamental_db: float = -20.0,
) -> np.ndarray:
    """Harmonics 1, 2, 3 with the fundamental `fundamental_db` below the equal 2nd and 3rd."""
    return additive_tone(
        f0_hz=f0_hz,
        harmonic_amplitudes=[10.0 ** (fundamental_db / 20.0), 1.0, 1.0],
        sample_rate_hz=sample_rate_hz,
        duration_s=duration_s,
        amplitude=amplitude / 2.0,
    )


def vibrato_f0_hz(
    times_s: np.ndarray, *, f0_hz: float, rate_hz: float = 6.0, depth_cents: float = 50.0
) -> np.ndarray:
    """Instantaneous f0 of `vibrato_tone` at `times_s`: f0 * 2^(depth sin(2 pi rate t) / 1200)."""
    cents = depth_cents * np.sin(2.0 * np.pi * rate_hz * np.asarray(times_s))
    return f0_hz * 2.0 ** (cents / 1200.0)


def vibrato_tone(
    *,
    f0_hz: float,
    sample_rate_hz: int,
    duration_s: float,
    amplitude: float = 0.5,
    rate_hz: float = 6.0,
    depth_cents: float = 50.0,
    harmonic_amplitudes: Sequence[float] = (1.0, 0.5, 0.25),
) -> np.ndarray:
    """A harmonic tone whose f0 follows `vibrato_f0_hz` (sinusoidal, in cents)."""
    f0 = vibrato_f0_hz(
        time_axis(sample_rate_hz, duration_s),
        f0_hz=f0_hz,
        rate_hz=rate_hz,
        depth_cents=depth_cents,
    )
    return additive_tone(
        f0_hz=f0,
        harmonic_amplitudes=harmonic_amplitudes,
        sample_rate_hz=sample_rate_hz,
        duration_s=duration_s,
        amplitude=amplitude,
    )


def white_noise(
    *, sample_rate_hz: int, duration_s: float, rms: float = 0.1, seed: int = 0
) -> np.ndarray:
    """Gaussian white noise of the given RMS."""
    rng = np.random.default_rng(seed)
    return rms * rng.standard_normal(n_samples(sample_rate_hz, duration_s))


def with_noise(signal: np.ndarray, *, snr_db: float, seed: int = 0) -> np.ndarray:
    """`signal` plus white noise `snr_db` below its mean-square power."""
    power = float(np.mean(np.square(signal)))
    rms = np.sqrt(power / 10.0 ** (snr_db / 10.0))
    rng = np.random.default_rng(seed)
    return signal + rms * rng.standard_normal(len(signal))


def note_sequence(
    *,
    f0s_hz: Sequence[float],
    sample_rate_hz: int,
    note_s: float = 0.15,
    gap_s: float = 0.05,
    lead_s: float = 0.05,
    amplitude: float = 0.5,
    fade_s: float = 0.005,
    harmonic_amplitudes: Sequence[float] = (1.0, 0.5, 0.33, 0.25),
) -> tuple[np.ndarray, np.ndarray]:
    """Separate notes with silent gaps; returns (audio, onset times in s).

    Note k starts at lead_s + k * (note_s + gap_s) with a `fade_s` linear fade in and out; the
    signal ends one gap after the last note.
    """
    step = note_s + gap_s
    audio = silence(sample_rate_hz=sample_rate_hz, duration_s=lead_s + len(f0s_hz) * step)
    onsets = lead_s + step * np.arange(len(f0s_hz))
    envelope = np.ones(n_samples(sample_rate_hz, note_s))
    fade = min(n_samples(sample_rate_hz, fade_s), len(envelope) // 2)
    if fade:
        ramp = np.arange(1, fade + 1) / fade
        envelope[:fade] = ramp
        envelope[-fade:] = ramp[::-1]
    for onset_s, f0 in zip(onsets, f0s_hz):
        note = additive_tone(
            f0_hz=f0,
            harmonic_amplitudes=harmonic_amplitudes,
            sample_rate_hz=sample_rate_hz,
            duration_s=note_s,
            amplitude=amplitude,
        )
        start = n_samples(sample_rate_hz, onset_s)
        audio[start : start + len(note)] += note * envelope
    return audio, onsets


def cents(estimate_hz: np.ndarray, truth_hz: np.ndarray | float) -> np.ndarray:
    """Pitch difference in cents, 1200 log2(estimate / truth)."""
    return 1200.0 * np.log2(np.asarray(estimate_hz) / np.asarray(truth_hz))
