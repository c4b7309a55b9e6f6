"""engine.audio_io's read path: NaN and Inf samples become zeros with one counted warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.audio_io import read_mono

REPO = Path(__file__).resolve().parents[1]


def _file_with_bad_samples(path: Path) -> Path:
    t = np.arange(48000) / 48000
    audio = np.column_stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    audio[100, 0] = np.nan
    audio[2000:2010, 1] = np.inf
    audio[30000] = -np.inf  # both channels: 2 samples
    sf.write(str(path), audio, 48000, subtype="FLOAT")
    return path


def test_nan_and_inf_are_zeroed_with_their_count(tmp_path, capsys) -> None:
    path = _file_with_bad_samples(tmp_path / "bad.wav")
    mono = read_mono(path, 48000)
    warning = capsys.readouterr().err.strip().splitlines()
    assert warning == [f"tutti: warning: input file {path} holds 13 NaN or Inf samples; they were set to 0"]
    assert np.all(np.isfinite(mono))
    assert mono[100] == np.float32(0.5 * 0.3 * np.sin(2 * np.pi * 220 * 100 / 48000))  # one channel zeroed
    assert mono[30000] == 0.0 and mono[2005] != 0.0
    clean = tmp_path / "clean.wav"
    sf.write(str(clean), np.zeros(4800, dtype=np.float32), 48000, subtype="FLOAT")
    read_mono(clean, 24000)
    assert capsys.readouterr().err == ""


def test_analyze_of_a_file_with_nan_writes_finite_features(tmp_path) -> None:
    path = _file_with_bad_samples(tmp_path / "bad.wav")
    out = tmp_path / "f.csv"
    result = subprocess.run([sys.executable, str(REPO / "launch.py"), "analyze", str(path), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [f"tutti: warning: input file {path} holds 13 NaN or Inf samples; they were set to 0"]
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert table.shape == (250, 5) and np.all(np.isfinite(table))
