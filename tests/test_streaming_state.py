"""StreamingAnalyzer's fused `push_frame` and its structref state: the same frames as push then
compute_frame and as analyze(), one frame per hop, the overrun error, no allocation after
warm-up, and kernels that a fresh process loads from numba's cache instead of compiling."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from engine.features.frames import N_FEATURES, VOICING
from engine.features.streaming import StreamingAnalyzer
from tests import signals
from tests.allocation import run_fresh

SR = 48000


@pytest.fixture(scope="module")
def analyzer() -> StreamingAnalyzer:
    return StreamingAnalyzer(SR)


def melody(sample_rate_hz: int = SR) -> np.ndarray:
    """Four notes with silent gaps, 30 dB of noise and a noise burst, float32 (the live dtype)."""
    notes, _ = signals.note_sequence(
        f0s_hz=[110.0, 262.0, 440.0, 880.0], sample_rate_hz=sample_rate_hz, note_s=0.1, gap_s=0.03
    )
    burst = signals.white_noise(sample_rate_hz=sample_rate_hz, duration_s=0.05, rms=0.05, seed=5)
    audio = np.concatenate([signals.with_noise(notes, snr_db=30.0, seed=4), burst])
    return (audio[: len(audio) - 11]).astype(np.float32)  # not a whole number of hops


def pieces(length: int, block: int, hop: int):
    """(offset, count) of each push a caller makes: blocks of `block` split at frame edges."""
    pending = 0
    for start in range(0, length, block):
        position, end = start, min(start + block, length)
        while position < end:
            count = min(hop - pending, end - position)
            yield position, count
            pending = (pending + count) % hop
            position += count


def fused_frames(analyzer: StreamingAnalyzer, audio: np.ndarray, block: int) -> np.ndarray:
    analyzer.reset()
    out = np.zeros(N_FEATURES)
    frames = []
    for offset, count in pieces(len(audio), block, analyzer.frame_samples):
        if analyzer.push_frame(audio, offset, count, out):
            frames.append(out.copy())
    analyzer.reset()
    return np.array(frames)


def two_call_frames(analyzer: StreamingAnalyzer, audio: np.ndarray, block: int) -> np.ndarray:
    analyzer.reset()
    out = np.zeros(N_FEATURES)
    frames = []
    for offset, count in pieces(len(audio), block, analyzer.frame_samples):
        analyzer.push(audio, offset, count)
        if analyzer.pending == analyzer.frame_samples:
            analyzer.compute_frame(out)
            frames.append(out.copy())
    analyzer.reset()
    return np.array(frames)


@pytest.mark.parametrize("block", [128, 37])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_push_frame_equals_push_then_compute_frame_and_analyze(
    analyzer: StreamingAnalyzer, block: int, dtype: type
) -> None:
    audio = melody().astype(dtype)
    fused = fused_frames(analyzer, audio, block)
    assert fused.shape == (len(audio) // analyzer.frame_samples, N_FEATURES)
    np.testing.assert_array_equal(fused, two_call_frames(analyzer, audio, block))
    np.testing.assert_array_equal(fused, analyzer.analyze(audio, block).values)
    voiced = fused[:, VOICING] >= 0.5
    assert 0.3 < voiced.mean() < 0.9  # real content: notes and gaps, not one repeated frame


@pytest.mark.parametrize("block", [128, 37, 1])
def test_push_frame_is_true_once_per_hop(analyzer: StreamingAnalyzer, block: int) -> None:
    hop = analyzer.frame_samples
    n = 25 * hop + 61
    audio = np.ones(n, dtype=np.float32)
    out = np.zeros(N_FEATURES)
    analyzer.reset()
    frame_ends = []
    pushed = 0
    for offset, count in pieces(n, block, hop):
        pushed += count
        if analyzer.push_frame(audio, offset, count, out):
            frame_ends.append(pushed)
            assert analyzer.pending == 0
        else:
            assert analyzer.pending == pushed % hop
    assert len(frame_ends) == n // hop == 25
    assert frame_ends == [hop * (k + 1) for k in range(25)]  # True at every frame edge, only
    assert analyzer.pending == 61
    analyzer.reset()
    assert analyzer.pending == 0


def test_overrun_and_bad_blocks_raise_and_leave_the_state(analyzer: StreamingAnalyzer) -> None:
    hop = analyzer.frame_samples
    block = np.ones(2 * hop, dtype=np.float32)
    out = np.full(N_FEATURES, np.nan)
    analyzer.reset()
    assert analyzer.push_frame(block, 0, 40, out) is False
    assert analyzer.pending == 40 and np.isnan(out).all()  # no frame: out untouched
    overrun = f"{hop - 39} samples overrun the frame \\(40 of {hop} pending\\): split blocks at"
    with pytest.raises(ValueError, match=f"^{overrun} frame edges$"):
        analyzer.push_frame(block, 0, hop - 39, out)
    with pytest.raises(ValueError, match=f"^{overrun} frame edges and call compute_frame in"):
        analyzer.push(block, 0, hop - 39)
    with pytest.raises(ValueError, match="samples 300..500 lie outside the block"):
        analyzer.push_frame(block, 300, 200, out)
    with pytest.raises(ValueError, match="push_frame takes a 1-D float32 or float64 array"):
        analyzer.push_frame(np.ones(10, dtype=np.int16), 0, 10, out)
    with pytest.raises(ValueError, match="push_frame takes a 1-D float32 or float64 array"):
        analyzer.push_frame(np.ones((2, 5), dtype=np.float32), 0, 1, out)
    assert analyzer.pending == 40 and np.isnan(out).all()  # the errors changed nothing
    assert analyzer.push_frame(block, 40, hop - 40, out) is True
    assert analyzer.pending == 0 and np.isfinite(out).all()
    # The frame after the refused pushes is the frame of the same samples pushed cleanly.
    clean = StreamingAnalyzer(SR)
    expected = np.zeros(N_FEATURES)
    assert clean.push_frame(block, 0, hop, expected) is True
    np.testing.assert_array_equal(out, expected)
    analyzer.reset()


def test_push_frame_allocates_nothing_after_warm_up() -> None:
    """After warm-up, 2000 push_frame calls on float32 blocks keep nothing and reach the same
    tracemalloc peak as 20; numba allocates only the record it makes for each array argument
    (block and out: 2 per call), freed on return. The state costs no allocation: it travels as
    its address."""
    script = textwrap.dedent(
        """
        import itertools, json
        import numpy as np
        from engine.features.streaming import StreamingAnalyzer
        from tests.allocation import measure_short_and_long

        analyzer = StreamingAnalyzer(48000)
        hop, half = analyzer.frame_samples, analyzer.frame_samples // 2
        audio = (np.random.default_rng(0).standard_normal(10 * hop) * 0.1).astype(np.float32)
        starts = [(k * hop, k * hop + half) for k in range(10)]  # made once: no int churn
        out = np.zeros(16)
        frames = [analyzer.push_frame(audio, first, half, out) for first, _ in starts[:1]]
        frames.append(analyzer.push_frame(audio, starts[0][1], hop - half, out))

        def run(cycles):
            for _ in itertools.repeat(None, cycles):
                for first, second in starts:
                    analyzer.push_frame(audio, first, half, out)
                    analyzer.push_frame(audio, second, hop - half, out)

        print(json.dumps([*measure_short_and_long(run, 1, 100), frames]))
        """
    )
    short, long, frames = json.loads(run_fresh(script, timeout_s=300))
    print("(numba allocations, numba kept, Python bytes kept, Python peak), 20 and 2000 calls:",
          short, long)
    assert frames == [False, True]  # the second call of each pair completes the frame
    assert short[0] == 20 * 2 and long[0] == 2000 * 2
    assert long[1:] == short[1:]  # nothing kept, and the same peak for 100 times the calls
    assert long[1] == 0 and long[2] == 0


def test_a_fresh_process_loads_every_kernel_from_the_cache(analyzer: StreamingAnalyzer) -> None:
    """The kernels take the structref (or its address) and are cached on disk: a new process
    (after this one has compiled and saved them) compiles none of them, at any rate or f0
    range, and has one specialisation per input dtype, not one per analyzer."""
    script = textwrap.dedent(
        """
        import json
        from engine.features import streaming

        for rate, f0_range in ((48000, ()), (16000, ()), (96000, (80.0, 800.0))):
            streaming.StreamingAnalyzer(rate, *f0_range)
        kernels = (streaming._new_state, streaming._state_address, streaming._reset,
                   streaming._push, streaming._compute_frame, streaming._push_frame)
        print(json.dumps({k.__name__: [len(k.signatures), sum(k.stats.cache_hits.values()),
                                       sum(k.stats.cache_misses.values())] for k in kernels}))
        """
    )
    stats = json.loads(run_fresh(script, timeout_s=300))
    print("kernel: [signatures, cache hits, cache misses]", stats)
    assert stats == {
        "_new_state": [1, 1, 0],
        "_state_address": [1, 1, 0],
        "_reset": [1, 1, 0],
        "_push": [2, 2, 0],
        "_compute_frame": [1, 1, 0],
        "_push_frame": [2, 2, 0],
    }
