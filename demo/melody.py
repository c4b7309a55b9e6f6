"""The shipped demo input: a sung-like melody with vibrato, dynamics and breath, made by Tutti.

`python -m demo.melody` rewrites demo/melody.flac; tests import `render_melody` to get the
same kind of signal with known pitch (optionally with room reverb).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEMO_PATH = Path(__file__).with_name("melody.flac")

# (MIDI note or None for a rest, beats): a folk-like tune in D major.
TUNE: tuple[tuple[int | None, float], ...] = (
    (62, 1), (66, 1), (69, 1.5), (67, 0.5), (66, 1), (64, 1), (62, 2),
    (None, 0.5), (64, 0.5), (66, 1), (67, 1), (69, 1), (71, 1), (69, 3),
    (None, 1), (74, 1), (73, 1), (71, 1), (69, 1), (67, 1.5), (66, 0.5), (64, 2),
    (None, 0.5), (66, 0.5), (64, 1), (62, 1), (57, 1), (62, 4),
)


@dataclass(frozen=True)
class MelodyTruth:
    """Per-sample ground truth of a rendered melody: f0 in Hz (0 in rests)."""

    f0_hz: np.ndarray
    sample_rate_hz: int


def _envelope(n: int, sample_rate_hz: int, peak: float) -> np.ndarray:
    attack = min(n // 3, int(0.04 * sample_rate_hz))
    release = min(n // 3, int(0.06 * sample_rate_hz))
    env = np.full(n, peak)
    env[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False) ** 1.5
    env[n - release:] *= np.linspace(1.0, 0.0, release) ** 2
    swell = 1.0 + 0.25 * np.sin(np.linspace(0.0, np.pi, n))  # a phrase-like swell per note
    return env * swell


def _room(audio: np.ndarray, sample_rate_hz: int, rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """Convolve with an exponentially decaying noise tail: a plain small room."""
    n = int(rt60_s * sample_rate_hz)
    t = np.arange(n) / sample_rate_hz
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60_s) * 0.08
    tail[0] = 1.0
    wet = np.fft.irfft(np.fft.rfft(audio, len(audio) + n) * np.fft.rfft(tail, len(audio) + n))
    return wet[: len(audio)]


def render_melody(
    *,
    sample_rate_hz: int = 48000,
    tempo_bpm: float = 96.0,
    transpose_semitones: float = 0.0,
    vibrato_cents: float = 35.0,
    breath_db: float = -38.0,
    room_rt60_s: float = 0.0,
    seed: int = 7,
) -> tuple[np.ndarray, MelodyTruth]:
    """Render TUNE as float32 audio peaking near -3 dBFS, plus its per-sample true f0.

    Each note is a band-limited harmonic tone with a vocal-like spectral tilt, delayed vibrato
    (5.5 Hz), a dynamic swell and breath noise; `room_rt60_s` > 0 adds room reverb.
    """
    rng = np.random.default_rng(seed)
    beat_s = 60.0 / tempo_bpm
    total = int(sum(beats for _, beats in TUNE) * beat_s * sample_rate_hz) + sample_rate_hz // 2
    audio = np.zeros(total)
    f0_truth = np.zeros(total)
    start = sample_rate_hz // 4
    phase = 0.0
    for i, (note, beats) in enumerate(TUNE):
        n = int(beats * beat_s * sample_rate_hz)
        if note is not None:
            t = np.arange(n) / sample_rate_hz
            depth = vibrato_cents * np.clip((t - 0.15) / 0.3, 0.0, 1.0)
            cents = depth * np.sin(2 * np.pi * 5.5 * t)
            f0 = 440.0 * 2 ** ((note + transpose_semitones - 69) / 12 + cents / 1200)
            theta = phase + 2 * np.pi * np.cumsum(f0) / sample_rate_hz
            tone = np.zeros(n)
            for h in range(1, 40):
                partial_hz = h * f0.max()
                if partial_hz >= 0.45 * sample_rate_hz:
                    break
                formant = 1.0 + 2.0 * np.exp(-(((partial_hz - 700.0) / 300.0) ** 2))
                tone += formant / h**1.3 * np.sin(h * theta)
            level = 0.55 + 0.35 * ((i * 5) % 7) / 6  # dynamics vary from note to note
            audio[start:start + n] += tone * _envelope(n, sample_rate_hz, level)
            f0_truth[start:start + n] = f0
        start += n
    peak = np.max(np.abs(audio))
    audio *= 0.7 / peak
    breath = rng.standard_normal(total) * 10 ** (breath_db / 20)
    audio += breath
    if room_rt60_s > 0:
        audio = _room(audio, sample_rate_hz, rng, room_rt60_s)
    audio *= 0.7 / np.max(np.abs(audio))
    return audio.astype(np.float32), MelodyTruth(f0_truth, sample_rate_hz)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the demo melody shipped with Tutti.")
    parser.add_argument("--out", type=Path, default=DEMO_PATH, help="output file (FLAC, 16 bit)")
    args = parser.parse_args()
    import soundfile as sf

    from engine.safe_files import atomic_path

    audio, _ = render_melody()
    with atomic_path(args.out) as temporary:
        sf.write(str(temporary), audio, 48000, subtype="PCM_16")
    print(f"wrote {args.out} ({len(audio) / 48000:.1f} s)")


if __name__ == "__main__":
    main()
