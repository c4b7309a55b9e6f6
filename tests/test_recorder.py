"""The SPSC sample ring and the live take recorder: exact round trips through real WAV files,
a killed process, a full disk (simulated and a real tmpfs), dropped frames, zero allocation."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.errors import TuttiError
from realtime.recorder import SessionRecorder
from engine.ring import SampleRing
from tests.allocation import run_fresh

REPO = Path(__file__).resolve().parents[1]
SR = 48000
BLOCK = 128
SHIFT = 480  # a 10 ms round trip
VOICES = ("lead", "pad", "bass")


Signals = tuple[np.ndarray, np.ndarray, np.ndarray]


def take_signals(n_frames: int) -> Signals:
    """Distinct float32 signals defined by frame index: input [n], mix [n, 2], voices [V, n]."""
    phase = 2 * np.pi * np.arange(n_frames) / SR
    input_ = (np.arange(n_frames) % 4801 / 4800.0 - 0.5).astype(np.float32)  # a sawtooth ramp
    mix = np.stack([0.5 * np.sin(220 * phase), 0.25 * np.cos(330 * phase)], axis=1)
    voices = np.stack([(0.2 + 0.1 * v) * np.sin(110 * (v + 1) * phase + v)
                       for v in range(len(VOICES))])
    return input_, mix.astype(np.float32), voices.astype(np.float32)


def push_paced(recorder: SessionRecorder, signals: Signals, speed: float,
               results: list[bool] | None = None) -> None:
    """Push the signals in blocks of BLOCK at `speed` times real time (absolute deadlines)."""
    input_, mix, voices = signals
    started = time.monotonic()
    for start in range(0, input_.shape[0], BLOCK):
        count = min(BLOCK, input_.shape[0] - start)
        delay = started + start / SR / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        end = start + BLOCK
        ok = recorder.push(input_[start:end], mix[start:end], voices[:, start:end], count)
        if results is not None:
            results.append(ok)


def read_take(folder: Path) -> dict[str, np.ndarray]:
    """Every file of a take, read back with soundfile as float32; checks format and rate."""
    take = {}
    for name in ("input", "mix", *VOICES):
        path = folder / f"{name}.wav"
        info = sf.info(str(path))
        assert (info.format, info.subtype, info.samplerate) == ("WAV", "FLOAT", SR)
        assert info.channels == (2 if name == "mix" else 1)
        take[name], _ = sf.read(str(path), dtype="float32", always_2d=False)
    return take


def assert_take_matches(take: dict[str, np.ndarray], signals: Signals, n: int,
                        padded: bool) -> None:
    """Files hold the first n output frames exactly: input shifted by SHIFT, the rest aligned."""
    input_, mix, voices = signals
    expected_input = input_[SHIFT:]
    if padded:
        expected_input = np.concatenate([expected_input, np.zeros(SHIFT, np.float32)])
    np.testing.assert_array_equal(take["input"], expected_input[:n])
    np.testing.assert_array_equal(take["mix"], mix[:n])
    for v, name in enumerate(VOICES):
        np.testing.assert_array_equal(take[name], voices[v, :n])


# SampleRing


@pytest.mark.parametrize("block", [1, 64, 65, 128, 333])
def test_ring_round_trip_wraps_exactly(block: int) -> None:
    frames = np.random.default_rng(block).standard_normal((5000, 4)).astype(np.float32)
    ring = SampleRing.allocate(1000, 4)
    out = np.zeros_like(frames)
    dest = np.zeros((97, 4), np.float32)
    written = read = 0
    while read < frames.shape[0]:
        count = min(block, frames.shape[0] - written)
        if count and ring.write(frames[written:written + count], count):
            written += count
        n = ring.read_into(dest, 97)
        out[read:read + n] = dest[:n]
        read += n
    np.testing.assert_array_equal(out, frames)
    assert ring.available() == 0 and ring.free() == 1000


def test_ring_interleaves_sources_into_one_row() -> None:
    ring = SampleRing.allocate(8, 6)
    mono = np.arange(5, dtype=np.float64)
    stereo = np.arange(10, dtype=np.float32).reshape(5, 2) + 100
    rows = np.arange(15, dtype=np.float32).reshape(3, 5) + 200
    for _ in range(2):  # the second pass wraps around the end of the ring
        assert ring.reserve(4)
        ring.write_column(0, mono, 4, offset=1)
        ring.write_frames(1, stereo, 4, offset=1)
        ring.write_channels(3, rows, 4, offset=1)
        ring.commit(4)
        dest = np.zeros((8, 6), np.float32)
        assert ring.read_into(dest, 8) == 4
        expected = np.column_stack([mono[1:5], stereo[1:5], rows[:, 1:5].T])
        np.testing.assert_array_equal(dest[:4], expected)
        assert ring.reserve(2)  # frames 4..5 go to rows 4..5, then 6,7,0,1 on the next pass
        ring.write_column(0, mono, 2)
        ring.commit(2)
        assert ring.read_into(dest, 8) == 2


def test_ring_refuses_and_counts_what_does_not_fit() -> None:
    ring = SampleRing.allocate(256, 2)
    block = np.ones((128, 2), np.float32)
    assert ring.write(block, 128) and ring.write(block, 128)
    assert not ring.write(block, 128) and not ring.write(block, 100)
    assert ring.overflow_frames == 228 and ring.available() == 256 and ring.free() == 0
    assert ring.read_into(np.zeros((128, 2), np.float32), 1000) == 128
    assert ring.write(block, 128)
    with pytest.raises(ValueError):
        ring.write_column(0, block[:, 0], 4)  # nothing reserved
    ring.read_into(np.zeros((128, 2), np.float32), 128)
    assert ring.reserve(4)
    with pytest.raises(ValueError):
        ring.write_column(0, block[:3, 0], 4)  # source shorter than count


# SessionRecorder


def test_ten_second_take_round_trips_sample_exact(tmp_path: Path) -> None:
    n = 10 * SR + 77  # not a whole number of blocks
    signals = take_signals(n)
    recorder = SessionRecorder(tmp_path / "take", SR, VOICES, input_shift_samples=SHIFT)
    recorder.start()
    audio = threading.Thread(target=push_paced, args=(recorder, signals, 8.0))
    audio.start()
    audio.join()
    summary = recorder.stop()
    assert summary == {"frames": n, "seconds": n / SR, "dropped_frames": 0,
                       "input_shift_samples": SHIFT, "error": None, "zero_filled_frames": 0}
    take = read_take(tmp_path / "take")
    assert {len(audio) for audio in take.values()} == {n}
    assert_take_matches(take, signals, n, padded=True)
    assert np.all(take["input"][-SHIFT:] == 0) and np.any(take["input"][-SHIFT - 1] != 0)


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from realtime.recorder import SessionRecorder
from tests.test_recorder import BLOCK, SHIFT, SR, VOICES, take_signals
input_, mix, voices = take_signals(30 * SR)
recorder = SessionRecorder(Path(sys.argv[1]), SR, VOICES, input_shift_samples=SHIFT)
recorder.start()
recorder.push(input_, mix, voices, BLOCK)  # warm up before the clock starts
started = time.monotonic()
print("recording", flush=True)
for start in range(BLOCK, input_.shape[0], BLOCK):
    time.sleep(max(0.0, started + start / SR - time.monotonic()))
    recorder.push(input_[start:], mix[start:], voices[:, start:], BLOCK)
"""


def test_killed_process_leaves_readable_sample_correct_files(tmp_path: Path) -> None:
    folder = tmp_path / "take"
    child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(folder)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "recording", child.stderr.read()
        started = time.monotonic()
        time.sleep(2.0)
        os.kill(child.pid, signal.SIGKILL)
        elapsed = time.monotonic() - started
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    take = read_take(folder)
    lengths = {name: len(audio) for name, audio in take.items()}
    assert min(lengths.values()) >= (elapsed - 2 * 0.25) * SR, (elapsed, lengths)
    input_, mix, voices = take_signals(30 * SR)
    expected = {"input": input_[SHIFT:], "mix": mix, **dict(zip(VOICES, voices))}
    for name, audio in take.items():  # each file is exact up to its own last flush
        np.testing.assert_array_equal(audio, expected[name][:len(audio)])


def wait_for(condition, timeout_s: float) -> None:
    """Poll `condition` every 10 ms; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_low_free_space_ends_the_take_cleanly(tmp_path: Path) -> None:
    n = 6 * SR
    signals = take_signals(n)
    folder = tmp_path / "take"
    recorder = SessionRecorder(folder, SR, VOICES, input_shift_samples=SHIFT)
    recorder.start()
    pushed: list[bool] = []
    audio = threading.Thread(target=push_paced, args=(recorder, signals, 4.0, pushed))
    audio.start()
    wait_for(lambda: recorder.frames_written >= SR, 10.0)
    recorder.min_free_bytes = shutil.disk_usage(tmp_path).free + 1
    wait_for(lambda: recorder.error is not None, 5.0)
    audio.join()
    summary = recorder.stop()
    assert summary["error"] == recorder.error
    assert recorder.error.startswith("recording stopped: disk full at ")
    assert str(folder) in recorder.error and "free some space" in recorder.error
    assert not pushed[-1] and pushed[0]  # the audio thread was refused, never raised at
    take = read_take(folder)
    assert {len(audio) for audio in take.values()} == {summary["frames"]}
    assert SR <= summary["frames"] < n - SR
    assert_take_matches(take, signals, summary["frames"], padded=False)


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 2 MiB tmpfs, mounted for the test and unmounted after it."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_real_enospc_ends_the_take_with_equal_length_files(small_tmpfs: Path) -> None:
    n = 4 * SR  # 4.6 MB of audio for a 2 MiB disk
    signals = take_signals(n)
    folder = small_tmpfs / "take"
    recorder = SessionRecorder(folder, SR, VOICES, input_shift_samples=SHIFT, min_free_bytes=0)
    recorder.start()
    push_paced(recorder, signals, speed=8.0)
    summary = recorder.stop()
    assert summary["error"].startswith(f"recording stopped: disk full at {folder} after ")
    take = read_take(folder)
    assert {len(audio) for audio in take.values()} == {summary["frames"]}
    assert 0.5 * SR < summary["frames"] < 2 * SR
    assert_take_matches(take, signals, summary["frames"], padded=False)


def test_full_ring_counts_dropped_frames_and_keeps_the_files_aligned(tmp_path: Path) -> None:
    """Blocks the ring refused become zeros in every file, at their place in the take."""
    blocks = 937  # 2.5 s: the final drain crosses several writer chunks
    n = (blocks + 3) * BLOCK
    input_, mix, voices = take_signals(n)
    recorder = SessionRecorder(tmp_path / "take", SR, VOICES, input_shift_samples=SHIFT,
                               ring_seconds=blocks * BLOCK / SR)
    push = lambda s: recorder.push(input_[s:], mix[s:], voices[:, s:], BLOCK)  # noqa: E731
    results = [push(s) for s in range(0, (blocks + 2) * BLOCK, BLOCK)]
    assert results == [True] * blocks + [False, False]
    recorder._step(final=False)  # the writer catches up: the gap is announced before the next block
    assert push((blocks + 2) * BLOCK)
    summary = recorder.stop()  # never started: stop drains in the calling thread
    assert summary["dropped_frames"] == 2 * BLOCK and summary["error"] is None
    assert summary["frames"] == n and summary["zero_filled_frames"] == 2 * BLOCK
    assert not recorder.push(input_, mix, voices, BLOCK)  # the take is over
    lost = slice(blocks * BLOCK, (blocks + 2) * BLOCK)
    expected = [signal.copy() for signal in (input_, mix, voices)]
    expected[0][lost] = 0.0
    expected[1][lost] = 0.0
    expected[2][:, lost] = 0.0
    assert_take_matches(read_take(tmp_path / "take"), tuple(expected), n, padded=True)


def test_a_block_dropped_at_the_end_becomes_zeros(tmp_path: Path) -> None:
    input_, mix, voices = take_signals(2 * BLOCK)
    recorder = SessionRecorder(tmp_path / "take", SR, VOICES, ring_seconds=BLOCK / SR)
    assert recorder.push(input_, mix, voices, BLOCK)
    assert not recorder.push(input_[BLOCK:], mix[BLOCK:], voices[:, BLOCK:], BLOCK)
    summary = recorder.stop()
    assert summary["frames"] == 2 * BLOCK and summary["zero_filled_frames"] == BLOCK
    take = read_take(tmp_path / "take")
    np.testing.assert_array_equal(take["mix"][:BLOCK], mix[:BLOCK])
    assert not np.any(take["mix"][BLOCK:]) and not np.any(take["lead"][BLOCK:])


def test_unusable_folder_is_a_tutti_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    folder = blocker / "take"
    with pytest.raises(TuttiError, match=f"cannot record into {folder}: .*choose another"):
        SessionRecorder(folder, SR, VOICES)
    too_much = shutil.disk_usage(tmp_path).free + 2**40
    with pytest.raises(TuttiError, match="free some space"):
        SessionRecorder(tmp_path / "take", SR, VOICES, min_free_bytes=too_much)
    with pytest.raises(TuttiError, match="rename the voice"):
        SessionRecorder(tmp_path / "take", SR, ("lead", "mix"))


ALLOCATION_SCRIPT = """
import tempfile, tracemalloc
from pathlib import Path
import numba
import numpy as np
from numba.core.runtime import rtsys
from realtime.recorder import SessionRecorder
numba.njit(lambda: 0)()  # start numba's runtime, as the live host's kernels do
folder = Path(tempfile.mkdtemp())
fits = SessionRecorder(folder / "a", 48000, ("lead", "pad", "bass"))
full = SessionRecorder(folder / "b", 48000, ("lead", "pad", "bass"), ring_seconds=128 / 48000)
input_ = np.ones(128, np.float32)
mix = np.ones((128, 2), np.float32)
voices = np.ones((3, 128), np.float32)
def block():
    fits.push(input_, mix, voices, 128)
    full.push(input_, mix, voices, 128)
warm_up, window, run = [None] * 50, [None] * 50, [None] * 1000  # no loop ints allocated
tracemalloc.start()  # before warm-up: objects kept from then on are traced ones
for _ in warm_up:
    block()
stats0 = rtsys.get_allocation_stats()
current1, peak1 = tracemalloc.get_traced_memory()  # so that four reading ints are alive
current2, peak2 = tracemalloc.get_traced_memory()  # at both readings below
tracemalloc.reset_peak()
for _ in window:
    block()
current1, peak1 = tracemalloc.get_traced_memory()
for _ in run:
    block()
current2, peak2 = tracemalloc.get_traced_memory()
stats1 = rtsys.get_allocation_stats()
assert fits.dropped_frames == 0 and full.dropped_frames == 1099 * 128
print(stats1.alloc - stats0.alloc, stats1.free - stats0.free, current2 - current1, peak2 - peak1)
"""


def test_push_allocates_nothing_after_warm_up() -> None:
    output = run_fresh(ALLOCATION_SCRIPT, timeout_s=120)
    numba_allocs, numba_frees, current_growth, peak_growth = map(int, output.split())
    assert (numba_allocs, numba_frees) == (0, 0)
    # The ring's indices are int64 cells in (shared) memory: each read makes a transient 32-byte
    # scalar, and CPython keeps the last freed slice (56 B) for reuse, so the peak may differ by
    # one such object between readings. Any array (>= 112 B of header alone) would show.
    assert current_growth < 112
    assert peak_growth < 112
