"""The engine process apart from the control process: shared-memory rings across two
processes, the command ring, and faults on a real JACK server (a killed engine, a killed
control process, a voice that raises on the audio thread)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from demo.melody import DEMO_PATH
from engine.processor import BlockProcessor
from engine.ring import INDEX_CELLS, SampleRing
from realtime.commands import (
    COMMAND_SLOTS,
    PANIC,
    SWAP,
    CommandReader,
    CommandSender,
    command_layout,
)
from realtime.procfs import children, command_line, is_gone
from realtime.shared_memory import SharedArena
from tests.reference_config import reference_config
from tests.test_live import REPO, _rms_db, _wait_for_file, server_env

SR = 48000
STRESS_FRAMES = 300_000
RING_LAYOUT = (("frames", (1000, 3), "float32"), ("indices", (INDEX_CELLS,), "int64"))


def _produce(arena_name: str, seed: int) -> None:
    """Another process writes frame n as (n, -n, n % 7) in blocks of random size, retrying when full."""
    arena = SharedArena.attach(arena_name, RING_LAYOUT)
    ring = SampleRing(arena.arrays["frames"], arena.arrays["indices"])
    rng = np.random.default_rng(seed)
    block = np.zeros((400, 3), dtype=np.float32)
    position = 0
    while position < STRESS_FRAMES:
        count = min(int(rng.integers(1, 400)), STRESS_FRAMES - position)
        numbers = np.arange(position, position + count)
        block[:count, 0], block[:count, 1], block[:count, 2] = numbers, -numbers, numbers % 7
        while not ring.write(block, count):
            pass
        position += count


def test_a_ring_in_shared_memory_carries_every_frame_between_two_processes_in_order() -> None:
    arena = SharedArena.create(RING_LAYOUT)
    try:
        ring = SampleRing(arena.arrays["frames"], arena.arrays["indices"])
        producer = multiprocessing.get_context("spawn").Process(target=_produce, args=(arena.name, 7))
        producer.start()
        received = np.zeros((STRESS_FRAMES, 3), dtype=np.float32)
        got, deadline = 0, time.monotonic() + 120
        rng = np.random.default_rng(3)
        pauses = 0
        while got < STRESS_FRAMES and time.monotonic() < deadline:
            got += ring.read_into(received[got:], int(rng.integers(1, 700)))
            if got > (pauses + 1) * STRESS_FRAMES // 6:  # stall now and then: the producer fills the ring
                pauses += 1
                time.sleep(0.05)
        producer.join(30)
        assert producer.exitcode == 0 and got == STRESS_FRAMES
        numbers = np.arange(STRESS_FRAMES, dtype=np.float32)
        np.testing.assert_array_equal(received[:, 0], numbers)
        np.testing.assert_array_equal(received[:, 1], -numbers)
        np.testing.assert_array_equal(received[:, 2], np.arange(STRESS_FRAMES) % 7)
        assert ring.overflow_frames > 0  # the producer really did find the ring full, and waited
    finally:
        arena.close()


def test_an_overflowing_command_ring_refuses_and_counts_without_blocking() -> None:
    arrays = {name: np.zeros(shape, dtype=dtype) for name, shape, dtype in command_layout()}
    sender, reader = CommandSender(arrays), CommandReader(arrays)
    began = time.perf_counter()
    results = [sender.send(PANIC) for _ in range(COMMAND_SLOTS + 10)]
    elapsed = time.perf_counter() - began
    assert results == [True] * COMMAND_SLOTS + [False] * 10
    assert sender.dropped == 10 and elapsed < 0.5
    processor = BlockProcessor(reference_config(sets=["synth.reverb=false"]))
    assert reader.apply_pending(processor) == COMMAND_SLOTS
    assert sender.send(SWAP, 1, processor.kinds.index("reference:bowed-strings"))
    assert reader.apply_pending(processor) == 1
    assert processor.kinds[processor.voice_kind[1]] == "reference:bowed-strings"


def _engine_pid(control_pid: int, timeout_s: float = 60) -> int:
    """The spawned engine process among the control process's children."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid in children(control_pid):
            if b"spawn_main" in command_line(pid):
                return pid
        time.sleep(0.05)
    raise AssertionError(f"no engine process under {control_pid}")


def _start_take(server: str, take: Path, *extra: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), "live", "--input-file", str(DEMO_PATH), "--loop",
         "--record", str(take), *extra],
        cwd=REPO, env=server_env(server), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    _wait_for_file(take / "mix.wav")
    return process


def _assert_take_readable(take: Path, min_seconds: float) -> None:
    lengths = {sf.info(str(path)).frames for path in take.glob("*.wav")}
    assert len(lengths) == 1 and lengths.pop() >= min_seconds * SR
    mix, _ = sf.read(str(take / "mix.wav"))
    assert np.all(np.isfinite(mix)) and np.sqrt(np.mean(mix**2)) > 1e-3
    assert (take / "config.toml").is_file() and json.loads((take / "session.json").read_text())["mode"] == "live"


def _running_take(server: str, take: Path, seconds: float) -> tuple[subprocess.Popen, int]:
    """A looping take that has run for `seconds`: its control process and its engine's pid."""
    process = _start_take(server, take)
    engine = _engine_pid(process.pid)
    time.sleep(seconds)
    return process, engine


def test_a_killed_engine_process_ends_the_take_with_its_files_readable(named_jack_server, tmp_path) -> None:
    take = tmp_path / "take"
    process, engine = _running_take(named_jack_server[0], take, 3.0)
    os.kill(engine, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "engine process died" in errors[0], stderr
    _assert_take_readable(take, 2.0)
    session = json.loads((take / "session.json").read_text())
    assert session["provisional"] is False and "engine process died" in session["stop_reason"]


def test_a_killed_control_process_takes_the_engine_with_it_within_a_second(named_jack_server, tmp_path) -> None:
    take = tmp_path / "take"
    process, engine = _running_take(named_jack_server[0], take, 2.0)
    process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    process.wait(10)
    while not is_gone(engine) and time.monotonic() - killed < 5:
        time.sleep(0.01)
    waited = time.monotonic() - killed
    print(f"engine gone {waited * 1e3:.0f} ms after the control process")
    assert is_gone(engine) and waited < 1.0
    _assert_take_readable(take, 1.0)  # the writer died with the control process: headers still hold


def test_a_voice_that_raises_in_the_engine_falls_silent_and_the_stream_goes_on(named_jack_server, tmp_path) -> None:
    name, _ = named_jack_server
    take = tmp_path / "take"
    process = _start_take(name, take, "--duration", "5", "--set", 'voices.organ.kind="test:raise-after-frames:500"')
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    session = json.loads((take / "session.json").read_text())
    telemetry = session["telemetry"]
    assert telemetry["voice_faults"] == 1 and telemetry["callback_exceptions"] == 0
    organ, _ = sf.read(str(take / "organ.wav"))
    bass, _ = sf.read(str(take / "bass.wav"))
    raised_at = 501 * 192  # it raises when stepped on its 501st frame
    assert telemetry["callbacks"] * 128 > 2 * raised_at  # the stream went on well past the fault
    assert _rms_db(organ[SR:raised_at - 128]) > -40  # it played
    assert not np.any(organ[raised_at + 128:])        # then fell silent
    assert _rms_db(bass[raised_at + SR:]) > -40      # the others played on


def test_a_task_plan_that_decides_a_voice_plays_the_same_live_and_offline(named_jack_server, tmp_path) -> None:
    """The test task plans the organ's notes 0.2 s at a time (an octave apart on alternate
    plans); each plan comes into force at trigger + lookahead live (computed in the control
    process) as offline, so the organ's file is the same sample for sample."""
    name, _ = named_jack_server
    take = tmp_path / "take"
    process = _start_take(name, take, "--duration", "6", "--set", 'voices.organ.kind="test:plays-task-plan"')
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    session = json.loads((take / "session.json").read_text())
    assert session["telemetry"]["deadline_misses"] == 0, session["telemetry"]["tasks"]
    assert session["telemetry"]["tasks"]["test-plan"]["applied"] >= 25
    offline = tmp_path / "offline"
    result = subprocess.run(
        [sys.executable, str(REPO / "launch.py"), "perform", str(DEMO_PATH), "--out", str(offline),
         "--config", str(take / "config.toml")], cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    live_organ, _ = sf.read(str(take / "organ.wav"), dtype="float32")
    offline_organ, _ = sf.read(str(offline / "organ.wav"), dtype="float32")
    np.testing.assert_array_equal(live_organ, offline_organ[: len(live_organ)])
    # and the plans really played: the organ's pitch holds within a plan and jumps at its edges
    from engine.features.frames import F0, VOICING
    from engine.features.streaming import StreamingAnalyzer

    organ = StreamingAnalyzer(SR).analyze(live_organ).values
    semitones = np.where(organ[:, VOICING] > 0.8, 12 * np.log2(np.maximum(organ[:, F0], 1.0)), np.nan)
    edges = np.arange(75, len(organ) - 60, 50)  # plans come into force at 50 k + 25
    jumps = np.abs(semitones[edges + 12] - semitones[edges - 8])
    within = np.abs(semitones[edges + 40] - semitones[edges + 12])
    jumps, within = jumps[np.isfinite(jumps)], within[np.isfinite(within)]
    print(f"median jump at plan edges {np.median(jumps):.1f} semitones, within plans {np.median(within):.2f}")
    assert len(jumps) > 10 and np.median(jumps) > 6 and np.median(within) < 0.5


def test_ctrl_c_reaching_both_processes_ends_the_take_cleanly(named_jack_server, tmp_path) -> None:
    """A terminal's Ctrl-C signals the whole process group: the engine ignores it and the
    control process ends the take (final session.json, exit code 0)."""
    name, _ = named_jack_server
    take = tmp_path / "take"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), "live", "--input-file", str(DEMO_PATH), "--loop",
         "--record", str(take)],
        cwd=REPO, env=server_env(name), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    _wait_for_file(take / "mix.wav")
    time.sleep(2.0)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    session = json.loads((take / "session.json").read_text())
    assert session["stop_reason"] == "stopped by Ctrl-C" and session["provisional"] is False
    _assert_take_readable(take, 1.5)

