"""Hostile input through the real CLI: exit code 2, one line on stderr, never a traceback."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def run_launch(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "launch.py"), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _wav_with_rate(path: Path, rate_hz: int) -> Path:
    """A valid float WAV whose header then claims `rate_hz` (bytes 24..28 of a canonical header)."""
    sf.write(str(path), np.zeros(4800, dtype=np.float32), 48000, subtype="FLOAT")
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", rate_hz)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("rate_hz", [1, 0x7FFFFFFF])
def test_absurd_sample_rate(tmp_path, rate_hz) -> None:
    path = _wav_with_rate(tmp_path / f"rate{rate_hz}.wav", rate_hz)
    assert_one_line_error(run_launch("analyze", path, "--out", tmp_path / "f.csv"), str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_config_that_is_a_folder_and_set_keys_with_newlines(tmp_path) -> None:
    assert_one_line_error(run_launch("devices", "--config", tmp_path), str(tmp_path))
    assert_one_line_error(run_launch("devices", "--set", "engine.block\nsamples=64"), "not a config key")
    assert_one_line_error(run_launch("devices", "--set", "mixer.master_gain_db=nan"), "not a finite number")


def test_a_file_name_with_a_newline_stays_one_line(tmp_path) -> None:
    path = tmp_path / "two\nlines.wav"
    path.write_bytes(b"RIFF....WAVEjunk")
    assert_one_line_error(run_launch("analyze", path, "--out", tmp_path / "f.csv"), "lines.wav")
