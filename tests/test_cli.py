"""launch.py as a user runs it: perform, analyze, devices, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from demo.melody import render_melody
from engine.config import load_config

REPO = Path(__file__).resolve().parents[1]


def run_launch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def stereo_44k(tmp_path_factory) -> Path:
    """A 3 s stereo excerpt of the demo melody at 44.1 kHz, to exercise resampling and mono-mixing."""
    audio, _ = render_melody(sample_rate_hz=44100)
    path = tmp_path_factory.mktemp("inputs") / "melody_44k.wav"
    excerpt = audio[: 3 * 44100]
    sf.write(str(path), np.column_stack([excerpt, 0.5 * excerpt]), 44100, subtype="PCM_24")
    return path


@pytest.fixture(scope="module")
def performed(stereo_44k, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("perform") / "session"
    result = run_launch("perform", stereo_44k, "--out", out, "--blocksize", "333")
    assert result.returncode == 0, result.stderr
    assert "real time" in result.stdout
    return out


def test_perform_writes_aligned_float32_files(performed) -> None:
    voices = load_config().voice_names
    names = ["input", "mix", *voices]
    infos = {name: sf.info(str(performed / f"{name}.wav")) for name in names}
    expected_frames = round(3 * 44100 * 48000 / 44100)
    for name, info in infos.items():
        assert info.samplerate == 48000 and info.subtype == "FLOAT", name
        assert abs(info.frames - expected_frames) <= 1, name
    assert len({info.frames for info in infos.values()}) == 1
    assert infos["mix"].channels == 2 and infos["input"].channels == 1


def test_perform_session_records_config_rates_and_timings(performed) -> None:
    session = json.loads((performed / "session.json").read_text())
    assert session["sample_rate_hz"] == 48000 and session["block_samples"] == 333
    assert session["config"]["engine"]["block_samples"] == 333
    assert session["timings"]["realtime_factor"] > 1.0
    assert 0 < session["latency_ms"]["onset"] < 30
    assert load_config([performed / "config.toml"]).engine.block_samples == 333


def test_perform_mix_has_no_clicks(performed) -> None:
    """No block-edge clicks: second-difference energy at block edges matches that elsewhere."""
    mix, _ = sf.read(str(performed / "mix.wav"))
    second = np.diff(mix[:, 0], 2) ** 2
    edges = np.arange(333, len(second) - 1, 333) - 1
    at_edges = np.mean(second[edges])
    elsewhere = np.mean(second)
    assert 10 * np.log10(at_edges / elsewhere) < 1.0
    assert np.max(np.abs(mix)) < 0.9


def test_analyze_writes_one_row_per_frame(stereo_44k, tmp_path) -> None:
    out = tmp_path / "features.csv"
    result = run_launch("analyze", stereo_44k, "--out", out)
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "time_s,f0_hz,voicing,loudness_db,onset"
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert table.shape == (3 * 48000 // 192, 5)
    assert table[0, 0] == pytest.approx(191 / 48000, abs=1e-6)
    voiced = table[:, 2] >= 0.5
    assert np.all(table[~voiced, 1] == 0) and np.all(table[voiced, 1] > 0)
    assert load_config([out.with_suffix(".config.toml")]) == load_config()


def test_devices_lists_the_jack_server(jack_server) -> None:
    result = run_launch("devices", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "JACK" in result.stdout


def _assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture()
def bad_inputs(tmp_path) -> dict[str, Path]:
    text = tmp_path / "notes.wav"
    text.write_text("these are not samples\n" * 20)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = tmp_path / "no_frames.wav"
    sf.write(str(silent), np.zeros(0, dtype=np.float32), 48000)
    corrupt = tmp_path / "corrupt.wav"
    sf.write(str(corrupt), np.zeros(4800, dtype=np.float32), 48000)
    corrupt.write_bytes(corrupt.read_bytes()[:30] + b"\xff" * 64)
    return {"missing": tmp_path / "missing.wav", "text": text, "empty": empty, "no_frames": silent, "corrupt": corrupt}


@pytest.mark.parametrize("case", ["missing", "text", "empty", "no_frames", "corrupt"])
def test_bad_input_files_give_one_line_errors(bad_inputs, case, tmp_path) -> None:
    path = bad_inputs[case]
    _assert_one_line_error(run_launch("perform", path, "--out", tmp_path / "out"), str(path))
    assert not (tmp_path / "out").exists()
    _assert_one_line_error(run_launch("analyze", path, "--out", tmp_path / "f.csv"), str(path))
    assert not (tmp_path / "f.csv").exists()


def test_bad_options_give_one_line_errors(stereo_44k, tmp_path) -> None:
    out = tmp_path / "out"
    _assert_one_line_error(run_launch("perform", stereo_44k, "--out", out, "--set", "mixer.volume=1"), "mixer.volume")
    _assert_one_line_error(run_launch("perform", stereo_44k, "--out", out, "--blocksize", "8"), "block size 8", "16..4096")
    _assert_one_line_error(run_launch("analyze", stereo_44k, "--out", out / "x.csv", "--blocksize", "5000"), "5000")
    assert not out.exists()


def test_a_folder_tutti_did_not_write_is_refused_even_with_force(stereo_44k, tmp_path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    for force in ((), ("--force",)):
        _assert_one_line_error(run_launch("perform", stereo_44k, "--out", out, *force), str(out), "keep.txt")
    assert (out / "keep.txt").read_text() == "precious" and sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_every_subcommand_has_help_and_checks_the_config() -> None:
    for command in ("analyze", "perform", "live", "devices", "prepare-data"):
        result = run_launch(command, "--help", timeout=60)
        assert result.returncode == 0 and "usage" in result.stdout
    _assert_one_line_error(run_launch("devices", "--set", "engine.nope=1", timeout=60), "engine.nope")
    _assert_one_line_error(
        run_launch("prepare-data", "render", "--out", "/tmp/unused", "--dry-run", "--set", "x.y=1", timeout=60), "x"
    )
