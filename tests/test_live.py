"""The live host on a real JACK server (dummy backend): takes, recordings, lost devices, fallbacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from demo.melody import DEMO_PATH
from engine.config import load_config
from tests.reference_config import REFERENCE_VOICES

REPO = Path(__file__).resolve().parents[1]


def launch(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env,
    )


def server_env(name: str) -> dict:
    return dict(os.environ, JACK_DEFAULT_SERVER=name)


@pytest.mark.parametrize("named_jack_server", [128, 256], indirect=True)
def test_ten_second_take_matches_perform(named_jack_server, tmp_path) -> None:
    name, _ = named_jack_server
    period = int(name.split("-")[2])
    take = tmp_path / "take"
    result = launch(
        "live", "--input-file", DEMO_PATH, "--duration", "10", "--record", take, "--blocksize", period,
        "--config", REFERENCE_VOICES, env=server_env(name),
    )
    assert result.returncode == 0, result.stderr
    session = json.loads((take / "session.json").read_text())
    telemetry = session["telemetry"]
    print(f"period {period}: {telemetry}")
    assert session["mode"] == "live" and "JACK" in session["host_api"]
    expected_callbacks = 10 * 48000 / period
    assert telemetry["callbacks"] >= 0.95 * expected_callbacks
    assert telemetry["deadline_misses"] == 0
    for key in ("xruns", "callback_ms_p50", "callback_ms_p99", "callback_ms_max"):
        assert key in telemetry
    assert set(telemetry["latency_ms"]) >= {"onset", "pitch_settle", "device", "total"}
    assert telemetry["latency_ms"]["total"] == pytest.approx(
        telemetry["latency_ms"]["onset"] + telemetry["latency_ms"]["device"]
    )

    names = ["input", "mix", *load_config([REFERENCE_VOICES]).voice_names]
    infos = {n: sf.info(str(take / f"{n}.wav")) for n in names}
    assert len({info.frames for info in infos.values()}) == 1
    assert all(info.subtype == "FLOAT" and info.samplerate == 48000 for info in infos.values())
    recorded = infos["mix"].frames
    assert recorded >= 0.95 * 10 * 48000

    # The round trip was measured by a click through a JACK loopback, and the recorded input is
    # shifted earlier by it, so the player's notes line up with the ensemble's answer.
    round_trip = session["round_trip"]
    assert round_trip["source"].startswith("measured") and period <= round_trip["samples"] <= 4 * period
    recorded_input, _ = sf.read(str(take / "input.wav"), dtype="float32")
    demo, _ = sf.read(str(DEMO_PATH), dtype="float32")
    shift = round_trip["samples"]
    np.testing.assert_array_equal(recorded_input[: recorded - shift], demo[shift:recorded])
    assert not np.any(recorded_input[recorded - shift:])

    offline = tmp_path / "offline"
    result = launch("perform", DEMO_PATH, "--out", offline, "--config", take / "config.toml", timeout=300)
    assert result.returncode == 0, result.stderr
    live_mix, _ = sf.read(str(take / "mix.wav"), dtype="float32")
    offline_mix, _ = sf.read(str(offline / "mix.wav"), dtype="float32")
    np.testing.assert_array_equal(live_mix, offline_mix[:recorded])


def test_recording_survives_a_killed_jack_server(named_jack_server, tmp_path) -> None:
    name, jackd = named_jack_server
    take = tmp_path / "take"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), "live", "--input-file", str(DEMO_PATH), "--loop",
         "--record", str(take), "--config", str(REFERENCE_VOICES)],
        cwd=REPO, env=server_env(name), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _wait_for_file(take / "mix.wav")
    time.sleep(3.0)
    jackd.send_signal(signal.SIGKILL)
    jackd.wait(timeout=10)
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("live did not end within 30 s of its JACK server dying")
    assert process.returncode == 1, stderr
    assert "stopped delivering audio" in stderr
    lengths = {sf.info(str(path)).frames for path in take.glob("*.wav")}
    assert len(lengths) == 1 and lengths.pop() >= 2 * 48000
    mix, _ = sf.read(str(take / "mix.wav"))
    assert np.all(np.isfinite(mix)) and np.sqrt(np.mean(mix**2)) > 1e-3


def test_no_audio_device_falls_back_to_offline(tmp_path) -> None:
    take = tmp_path / "fallback"
    result = launch("live", "--record", take, env=server_env("tutti-no-such-server"), timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no audio device" in lines[0] and "jackd" in lines[0]
    session = json.loads((take / "session.json").read_text())
    assert session["mode"] == "offline-fallback"
    assert sf.info(str(take / "mix.wav")).frames == sf.info(str(DEMO_PATH)).frames


def test_unknown_device_lists_the_real_ones(jack_server, tmp_path) -> None:
    result = launch("live", "--device", "no such card", "--duration", "1")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "no such card" in line and "JACK" in line and len(line.splitlines()) == 1


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20))


def _wait_for_file(path: Path, timeout_s: float = 60, min_seconds: float = 0.2) -> None:
    """Wait until the take's WAV `path` exists and its header covers `min_seconds` of 48 kHz
    audio: the stream runs (the files appear before the engine has warmed its voices)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if sf.info(str(path)).frames >= min_seconds * 48000:
                return
        except RuntimeError:  # not there yet, or its first header not written
            pass
        assert time.monotonic() < deadline, f"{path} never held {min_seconds} s of audio"
        time.sleep(0.05)


def test_midi_cc_from_another_port_moves_the_master_gain(named_jack_server, tmp_path) -> None:
    import rtmidi

    name, _ = named_jack_server
    overlay = tmp_path / "midi.toml"
    overlay.write_text(
        '[[midi.bindings]]\nport = "tutti-test-sender:knobs"\nkind = "cc"\nchannel = 0\nnumber = 7\n'
        'parameter = "mixer.master_gain_db"\n'
    )
    take = tmp_path / "take"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), "live", "--input-file", str(DEMO_PATH), "--loop",
         "--duration", "6", "--record", str(take), "--config", str(REFERENCE_VOICES), "--config", str(overlay)],
        cwd=REPO, env=server_env(name), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        sender = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="tutti-test-sender")
    finally:
        os.environ.pop("JACK_DEFAULT_SERVER")
    sender.open_virtual_port("knobs")
    _wait_for_file(take / "mix.wav")
    time.sleep(3.0)
    sender.send_message([0xB0, 7, 0])  # master fader all the way down: -60 dB
    stdout, stderr = process.communicate(timeout=60)
    sender.delete()
    assert process.returncode == 0, stderr
    session = json.loads((take / "session.json").read_text())
    moved = [entry for entry in session["midi"]["log"] if entry["parameter"] == "mixer.master_gain_db"]
    assert moved and moved[0]["message"] == [0xB0, 7, 0]
    mix, _ = sf.read(str(take / "mix.wav"))
    before, after = _rms_db(mix[int(1.0 * 48000):int(2.5 * 48000)]), _rms_db(mix[-48000:])
    print(f"master before {before:.1f} dB, after the CC {after:.1f} dB")
    assert before - after > 45
    records = session["automation"]["records"]
    assert [r[1:3] for r in records] == [[-1, 0]] and records[0][0] > 2.5 * 48000
    assert_perform_reproduces(take, tmp_path / "offline")


def assert_perform_reproduces(take: Path, out: Path) -> None:
    """`perform` of the demo with the take's config and automation gives the take's mix exactly."""
    result = launch("perform", DEMO_PATH, "--out", out, "--config", take / "config.toml",
                    "--automation", take / "session.json", timeout=300)
    assert result.returncode == 0, result.stderr
    live_mix, _ = sf.read(str(take / "mix.wav"), dtype="float32")
    offline_mix, _ = sf.read(str(out / "mix.wav"), dtype="float32")
    n = min(len(live_mix), len(offline_mix))
    assert n > 3 * 48000
    np.testing.assert_array_equal(live_mix[:n], offline_mix[:n])


def test_panic_from_the_terminal_silences_the_ensemble(named_jack_server, tmp_path) -> None:
    name, _ = named_jack_server
    take = tmp_path / "take"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), "live", "--input-file", str(DEMO_PATH), "--loop",
         "--duration", "7", "--record", str(take), "--config", str(REFERENCE_VOICES)],
        cwd=REPO, env=server_env(name), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_file(take / "mix.wav")
    time.sleep(1.2)
    process.stdin.write("set voices.bass.gain_db -20\nswap organ reference:bowed-strings\n")
    process.stdin.flush()
    time.sleep(1.3)
    process.stdin.write("panic\n")
    process.stdin.flush()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "panic: all voices muted" in stdout and "organ now plays reference:bowed-strings" in stdout
    mix, _ = sf.read(str(take / "mix.wav"))
    records = json.loads((take / "session.json").read_text())["automation"]["records"]
    kinds = [r[1] for r in records]
    assert sorted(kinds[:2]) == [-2, 0] and -3 in kinds  # the bass fader and the swap, then the panic
    panic_at = int(next(r[0] for r in records if r[1] == -3))
    # from 2 s after the panic on, the shared reverb's 1.4 s tail has died away too
    assert len(mix) - panic_at > 2.5 * 48000, "the take ended too soon after the panic"
    before, after = _rms_db(mix[int(1.0 * 48000):int(2.0 * 48000)]), _rms_db(mix[panic_at + 2 * 48000:])
    print(f"mix before {before:.1f} dB, after panic {after:.1f} dB")
    assert before > -40 and after < -90
    assert_perform_reproduces(take, tmp_path / "offline")


@pytest.mark.parametrize(
    "arguments, named",
    [
        (["--midi", "no-such-knobs"], "no-such-knobs"),
        (["--samplerate", "96000"], "96000"),
        (["--record", "/proc/tutti-take"], "/proc"),
        (["--blocksize", "5000"], "5000"),
    ],
    ids=["midi-port", "sample-rate", "record-folder", "block-size"],
)
def test_live_bad_input_gives_one_line_errors(named_jack_server, arguments, named) -> None:
    name, _ = named_jack_server
    result = launch("live", "--input-file", DEMO_PATH, "--duration", "1", *arguments, env=server_env(name))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert named in lines[0]
