#!/usr/bin/env python3
"""Cost of the DSP core per block: analysis, and synthesis for 1, 4 and 8 voices.

Prints p50/p99 per block in microseconds and as a fraction of the block's duration at 48 kHz.
Run it on an idle machine: `python bench/dsp.py [--seconds 4]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.features.frames import N_FEATURES  # noqa: E402
from engine.features.streaming import StreamingAnalyzer  # noqa: E402
from engine.rates import frame_samples  # noqa: E402
from engine.synth.voice_synth import VoiceSynth  # noqa: E402
from demo.melody import render_melody  # noqa: E402

SAMPLE_RATE_HZ = 48000


def _percentiles(times_s: list[float], block: int) -> str:
    us = np.array(times_s) * 1e6
    block_us = block / SAMPLE_RATE_HZ * 1e6
    p50, p99 = np.percentile(us, [50, 99])
    return f"{p50:8.1f} {p99:8.1f} {p50 / block_us:7.1%} {p99 / block_us:7.1%}"


def time_analysis(audio: np.ndarray, block: int) -> list[float]:
    """Seconds per block for the streaming analyser, frames computed at their edges."""
    analyzer = StreamingAnalyzer(SAMPLE_RATE_HZ)
    hop = frame_samples(SAMPLE_RATE_HZ)
    frame = np.zeros(N_FEATURES)
    times = []
    for start in range(0, len(audio) - block, block):
        t0 = time.perf_counter()
        position = start
        while position < start + block:
            take = min(start + block - position, hop - analyzer.pending)
            analyzer.push(audio, position, take)
            position += take
            if analyzer.pending == hop:
                analyzer.compute_frame(frame)
        times.append(time.perf_counter() - t0)
    return times


def time_synthesis(n_voices: int, block: int, n_blocks: int, n_harmonics: int, reverb: bool) -> list[float]:
    """Seconds per block for `n_voices` voice synths with new targets every control frame."""
    hop = frame_samples(SAMPLE_RATE_HZ)
    rng = np.random.default_rng(0)
    synths = [
        VoiceSynth(SAMPLE_RATE_HZ, hop, n_harmonics, 65, model_nyquist_hz=12000.0, reverb=reverb, seed=v)
        for v in range(n_voices)
    ]
    amplitudes = rng.uniform(0, 0.02, n_harmonics)
    noise = rng.uniform(0, 0.01, 65)
    out = np.zeros(block, dtype=np.float32)
    pending = 0
    times = []
    for _ in range(n_blocks):
        t0 = time.perf_counter()
        out[:] = 0.0
        position = 0
        while position < block:
            take = min(block - position, hop - pending)
            for synth in synths:
                synth.render(out, position, take)
            position += take
            pending += take
            if pending == hop:
                pending = 0
                for synth in synths:
                    synth.set_targets(220.0, amplitudes, noise)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="audio seconds timed per row")
    parser.add_argument("--harmonics", type=int, default=60, help="harmonics per voice")
    parser.add_argument("--no-reverb", action="store_true", help="time the synth without reverb")
    args = parser.parse_args()
    audio, _ = render_melody(sample_rate_hz=SAMPLE_RATE_HZ)
    audio = audio[: int(args.seconds * SAMPLE_RATE_HZ)]
    print(f"{'part':<22} {'block':>5} {'p50 us':>8} {'p99 us':>8} {'p50 %':>7} {'p99 %':>7}")
    for block in (64, 128, 256):
        print(f"{'analysis':<22} {block:5d} {_percentiles(time_analysis(audio, block), block)}")
    for n_voices in (1, 4, 8):
        for block in (64, 128, 256):
            n_blocks = int(args.seconds * SAMPLE_RATE_HZ / block)
            times = time_synthesis(n_voices, block, n_blocks, args.harmonics, not args.no_reverb)
            label = f"synth {n_voices} voice{'s' if n_voices > 1 else ''}"
            print(f"{label:<22} {block:5d} {_percentiles(times, block)}")


if __name__ == "__main__":
    main()
