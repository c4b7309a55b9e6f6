"""Reverb: decay time, block invariance, no DC build-up, silence after the tail, bypass."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.synth.reverb import Reverb
from tests.synth_drive import BLOCK_SIZES

SR = 48000


def process_in_blocks(reverb: Reverb, signal: np.ndarray, block: int) -> np.ndarray:
    out = signal.copy()
    for start in range(0, out.size, block):
        reverb.process(out, start, min(block, out.size - start))
    return out


def decay_time_s(impulse_response: np.ndarray) -> float:
    """RT60 from the Schroeder energy decay curve: twice the time from -5 dB to -35 dB."""
    energy = np.cumsum(impulse_response[::-1] ** 2)[::-1]
    curve_db = 10.0 * np.log10(energy / energy[0])
    return 2.0 * (np.argmax(curve_db < -35.0) - np.argmax(curve_db < -5.0)) / SR


@pytest.mark.parametrize("decay_s", [0.5, 1.5, 3.0])
def test_impulse_response_decays_60_db_in_decay_s(decay_s: float) -> None:
    impulse = np.zeros(int(3 * decay_s * SR))
    impulse[0] = 1.0
    response = process_in_blocks(Reverb(SR, decay_s, wet=1.0, seed=1), impulse, 128)
    assert abs(decay_time_s(response) / decay_s - 1.0) < 0.25
    assert 0.3 < np.sum(response**2) <= 1.0  # the reverb path has at most unit energy gain


def test_any_block_size_gives_the_same_samples() -> None:
    rng = np.random.default_rng(3)
    dry = rng.standard_normal(SR) * (np.arange(SR) < SR // 3)  # a burst, then its tail
    one_block = process_in_blocks(Reverb(SR, 1.0, 0.3, seed=2), dry, SR)
    for block in BLOCK_SIZES:
        blocked = process_in_blocks(Reverb(SR, 1.0, 0.3, seed=2), dry, block)
        assert np.max(np.abs(blocked - one_block)) <= 1e-12, block
    assert np.std(one_block[SR // 2 :]) > 1e-3


def test_no_dc_build_up() -> None:
    """A dry signal with a DC offset: the wet path carries none of it."""
    wet = 0.5
    rng = np.random.default_rng(4)
    dry = 1.0 + 0.1 * rng.standard_normal(4 * SR)
    out = process_in_blocks(Reverb(SR, 2.0, wet, seed=3), dry, 256)
    wet_part = (out - (1.0 - wet) * dry) / wet
    assert abs(np.mean(wet_part[-SR:])) < 1e-3
    assert np.std(wet_part[-SR:]) > 1e-3


def test_silence_in_gives_exact_silence_after_the_tail() -> None:
    dry = np.zeros(6 * SR)
    dry[: SR // 10] = np.random.default_rng(5).standard_normal(SR // 10)
    out = process_in_blocks(Reverb(SR, 0.5, 0.3, seed=4), dry, 128)
    assert np.max(np.abs(out[SR : 2 * SR])) > 0.0  # the tail is still there at 1 s ...
    assert not out[-SR:].any()  # ... and gone, to exact zeros, after 5 s (600 dB later)


def test_wet_zero_is_a_bypass_and_lengths_are_distinct_primes() -> None:
    dry = np.random.default_rng(6).standard_normal(SR // 4).astype(np.float32)
    out = process_in_blocks(Reverb(SR, 1.5, 0.0, seed=5), dry, 128)
    assert np.array_equal(out, dry)
    for seed in range(3):
        lengths = [int(n) for n in Reverb(SR, 1.5, 0.2, seed=seed).delay_samples]
        assert len(set(lengths)) == 8
        assert all(all(n % d for d in range(2, math.isqrt(n) + 1)) for n in lengths)
    assert not np.array_equal(Reverb(SR, seed=0).delay_samples, Reverb(SR, seed=1).delay_samples)
