"""The echo canceller: convergence, double talk with a following ensemble, block-split
invariance, silence and impulses, no allocation after warm-up, and cost per block."""

from __future__ import annotations

import json
import textwrap
import time

import numpy as np
import pytest
from scipy.signal import fftconvolve

from demo.melody import render_melody
from engine.echo import EchoCanceller
from tests.allocation import run_fresh

SR = 48000
BULK = 480  # 10 ms round trip
BLOCK = 128


def synthetic_room(seed: int = 3) -> np.ndarray:
    """Laptop-like room after the bulk delay: direct path 0.5, then a 60 ms noise tail decaying
    by 60 dB, about 7 dB below the direct path in energy (so partly beyond the 512 taps)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.06 * SR)) / SR
    room = rng.standard_normal(t.size) * np.exp(-6.91 * t / 0.06) * 0.03
    room[0] = 1.0
    return 0.5 * room


def echo_of(reference: np.ndarray, room: np.ndarray) -> np.ndarray:
    """What the microphone hears of `reference`: delayed by BULK, then through `room`."""
    delayed = np.concatenate([np.zeros(BULK), reference.astype(np.float64)])[: reference.size]
    return fftconvolve(delayed, room)[: reference.size]


def cancel(
    canceller: EchoCanceller, mic: np.ndarray, reference: np.ndarray, block: int = BLOCK,
    split: int | None = None,
) -> np.ndarray:
    """Run the processor's calling pattern: per block, `process` each sub-block of `split`
    samples (the whole block by default), then `push_reference` the block's stereo mix."""
    mic = mic.astype(np.float32)
    mix = np.repeat(reference.astype(np.float32)[:, None], 2, axis=1)
    out = np.zeros_like(mic)
    split = split or block
    for start in range(0, mic.size, block):
        count = min(block, mic.size - start)
        for offset in range(start, start + count, split):
            canceller.process(mic, offset, min(split, start + count - offset), out)
        canceller.push_reference(mix[start:start + count], count)
    return out.astype(np.float64)


def level_db(signal: np.ndarray, reference: np.ndarray) -> float:
    """Energy of `signal` relative to `reference`, in dB."""
    return float(10 * np.log10(np.sum(signal**2) / np.sum(reference**2)))


@pytest.fixture(scope="module")
def player() -> np.ndarray:
    return render_melody(sample_rate_hz=SR)[0].astype(np.float64)


@pytest.fixture(scope="module")
def follower() -> np.ndarray:
    """The ensemble an octave below the player, time-aligned: the worst case, as every player
    partial has an ensemble partial at the same frequency and phase."""
    return render_melody(sample_rate_hz=SR, transpose_semitones=-12, seed=11)[0].astype(np.float64)


def test_echo_alone_is_cancelled_by_20_db_after_2_s() -> None:
    far = render_melody(sample_rate_hz=SR, transpose_semitones=5, seed=11)[0]
    echo = echo_of(far, synthetic_room())
    canceller = EchoCanceller(SR, BULK)
    cleaned = cancel(canceller, echo, far)
    settled = 2 * SR
    erle_db = -level_db(cleaned[settled:], echo[settled:])
    print(f"echo only: ERLE {erle_db:.1f} dB after 2 s (telemetry {canceller.erle_db:.1f} dB)")
    assert erle_db >= 20.0
    assert canceller.erle_db >= 20.0
    assert canceller.adapting > 0.5  # nothing but echo: the filter keeps adapting


def test_double_talk_keeps_the_player_and_removes_the_echo(player, follower) -> None:
    """The ensemble plays its part alone (the filter converges), then the player joins and the
    ensemble follows an octave below. Over the duet the residual echo must stay 10 dB under
    the echo and the player must come through; without the safeguard the filter cancels the
    player instead (the same canceller with the detector disabled)."""
    intro = follower.size
    far = np.concatenate([follower, follower])
    near = np.concatenate([np.zeros(intro), player])
    echo = echo_of(far, synthetic_room())
    results = {}
    for name, threshold in (("guarded", None), ("unguarded", 1e-9)):
        kwargs = {} if threshold is None else {"freeze_threshold": threshold}
        cleaned = cancel(EchoCanceller(SR, BULK, **kwargs), near + echo, far)[intro:]
        residual_db = level_db(cleaned - near[intro:], echo[intro:])
        correlation = float(np.corrcoef(cleaned, near[intro:])[0, 1])
        results[name] = residual_db, correlation
        print(f"double talk, {name}: residual echo {residual_db:.1f} dB re echo, "
              f"correlation with the player {correlation:.4f}")
    residual_db, correlation = results["guarded"]
    assert residual_db <= -10.0
    assert correlation > 0.95
    assert results["unguarded"][0] > residual_db + 6.0  # the scenario does need the guard


@pytest.fixture(scope="module")
def split_signal(player, follower) -> tuple[np.ndarray, np.ndarray]:
    """0.6 s of echo alone, then 0.6 s of double talk: both the adapting and frozen paths."""
    n = int(1.2 * SR)
    near = np.where(np.arange(n) >= n // 2, player[SR // 4:SR // 4 + n], 0.0)
    far = follower[SR // 4:SR // 4 + n]
    return near + echo_of(far, synthetic_room()), far


@pytest.mark.parametrize("block,split", [
    (1024, 1), (1024, 64), (1024, 65), (1024, 128), (1024, 333), (128, 128), (333, 64),
])
def test_any_sub_block_split_gives_bit_identical_output(split_signal, block, split) -> None:
    """Blocks of 1024 (so the bulk delay is 1024) processed whole, or in sub-blocks of 1, 64,
    65, 128, 333 samples, or in other block sizes: the same output to the bit."""
    mic, far = split_signal
    if split == 1:
        mic, far = mic[: SR // 4], far[: SR // 4]  # 12000 calls is plenty
    whole = cancel(EchoCanceller(SR, 1024), mic, far, block=1024)
    cut = cancel(EchoCanceller(SR, 1024), mic, far, block=block, split=split)
    np.testing.assert_array_equal(cut, whole)
    assert np.sum((whole - mic) ** 2) > 1e-3 * np.sum(mic**2)  # the canceller did act


def test_silence_in_silence_out_and_no_nan_without_reference() -> None:
    silent = np.zeros(SR // 2)
    canceller = EchoCanceller(SR, BULK)
    assert np.all(cancel(canceller, silent, silent) == 0.0)
    mic = render_melody(sample_rate_hz=SR)[0][: SR // 2]
    cleaned = cancel(canceller, mic, silent)  # player alone: nothing to cancel, nothing learned
    np.testing.assert_array_equal(cleaned, mic.astype(np.float64))
    assert np.all(canceller.weights == 0.0)
    assert canceller.adapting == 0.0


def test_weights_stay_finite_under_impulses_and_bad_samples() -> None:
    far = render_melody(sample_rate_hz=SR, transpose_semitones=5, seed=11)[0][: SR]
    mic = echo_of(far, synthetic_room())
    mic[SR // 2] = 1e6  # a loud click at the microphone
    mic[SR // 2 + 100] = np.nan  # a broken device sample
    far = far.copy()
    far[SR // 4] = 1e6  # a loud impulse in the played mix
    far[SR // 4 + 50] = np.inf
    canceller = EchoCanceller(SR, BULK)
    cleaned = cancel(canceller, mic, far)
    assert np.all(np.isfinite(canceller.weights))
    assert np.all(np.isfinite(cleaned[SR // 2 + 101:]))
    assert np.max(np.abs(canceller.weights)) < 10.0
    canceller.reset()
    assert np.all(canceller.weights == 0.0) and canceller.erle_db == 0.0


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="bulk_delay_samples"):
        EchoCanceller(SR, 0)
    canceller = EchoCanceller(SR, BULK, max_block=256)
    with pytest.raises(ValueError, match="max_block"):
        canceller.push_reference(np.zeros((512, 2), dtype=np.float32), 512)


def test_no_allocation_after_warm_up() -> None:
    """After warm-up, 1000 process + push_reference calls of 128 samples keep nothing and
    reach the same tracemalloc peak as 50; numba allocates only the record it makes for each
    array argument of a call, freed on return (7 per process, 3 per push_reference)."""
    script = textwrap.dedent(
        """
        import itertools, json
        import numpy as np
        from engine.echo import EchoCanceller
        from tests.allocation import measure_short_and_long

        canceller = EchoCanceller(48000, 480)
        rng = np.random.default_rng(0)
        mic = (rng.standard_normal(128) * 0.1).astype(np.float32)
        mix = (rng.standard_normal((128, 2)) * 0.2).astype(np.float32)
        out = np.zeros(128, dtype=np.float32)

        def run(calls):
            for _ in itertools.repeat(None, calls):  # no int objects past 256
                canceller.process(mic, 0, 128, out)
                canceller.push_reference(mix, 128)

        print(json.dumps(measure_short_and_long(run, 50, 1000)))
        """
    )
    short, long = json.loads(run_fresh(script, timeout_s=120))
    print("(numba allocations, numba kept, Python bytes kept, Python peak), 50 and 1000 calls:",
          short, long)
    assert short[0] == 50 * (7 + 3) and long[0] == 1000 * (7 + 3)
    assert long[1:] == short[1:]  # nothing kept, and the same peak for 20 times the calls
    assert long[1] == 0


def test_cost_per_128_sample_block() -> None:
    """p50 of process + push_reference for one 128-sample block at 48 kHz, 512 taps, while
    adapting (the dearer path). Target < 60 us; the assert leaves room for a loaded machine."""
    far = render_melody(sample_rate_hz=SR, transpose_semitones=5, seed=11)[0][SR // 4:SR]
    mic = echo_of(far, synthetic_room()).astype(np.float32)
    mix = np.repeat(far[:, None], 2, axis=1)
    out = np.zeros_like(mic)
    canceller = EchoCanceller(SR, BULK, taps=512)
    times = []
    for start in range(0, mic.size - BLOCK + 1, BLOCK):
        began = time.perf_counter()
        canceller.process(mic, start, BLOCK, out)
        canceller.push_reference(mix[start:start + BLOCK], BLOCK)
        times.append(time.perf_counter() - began)
    p50_us = float(np.median(times[50:]) * 1e6)
    print(f"echo canceller: p50 {p50_us:.1f} us per 128-sample block (512 taps, "
          f"adapting share {canceller.adapting:.2f})")
    assert canceller.adapting > 0.5
    assert p50_us < 120.0
