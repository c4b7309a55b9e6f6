"""`launch.py analyze` against an independent offline tracker (librosa's pyin).

On a melody with vibrato, breath noise and room reverb, and on real recorded speech, f0 must be
within 50 cents on >= 90% of the frames both call voiced, and the voicing decisions must agree
on >= 90% of frames. Our analysis is causal and pyin is centred, so the comparison searches the
small lag (group delay) that best aligns them and reports it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from demo.melody import render_melody

REPO = Path(__file__).resolve().parents[1]
SPEECH = [Path("/usr/share/sounds/alsa") / f"{name}.wav" for name in ("Front_Center", "Rear_Right")]
PYIN_SR, PYIN_HOP = 16000, 64
# A 32 ms frame: comparable to our 20 ms YIN window, so both can follow fast speech glides
# (pyin's longer frames smooth them away and hold voicing through consonants).
PYIN_FRAME = 512


def _analyze(path: Path, tmp_path: Path) -> np.ndarray:
    out = tmp_path / f"{path.stem}.csv"
    result = subprocess.run(
        [sys.executable, str(REPO / "launch.py"), "analyze", str(path), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return np.loadtxt(out, delimiter=",", skiprows=1)


def _pyin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    audio, _ = librosa.load(str(path), sr=PYIN_SR, mono=True)
    f0, voiced, _ = librosa.pyin(
        audio, fmin=65.0, fmax=1000.0, sr=PYIN_SR, frame_length=PYIN_FRAME, hop_length=PYIN_HOP
    )
    times = np.arange(len(f0)) * PYIN_HOP / PYIN_SR
    return times, np.where(voiced, f0, 0.0)


def _agreement(ours: np.ndarray, pyin_times: np.ndarray, pyin_f0: np.ndarray, lag_s: float):
    """(pitch agreement on frames both call voiced, voicing agreement, frames both voiced)."""
    index = np.clip(np.round((ours[:, 0] - lag_s) * PYIN_SR / PYIN_HOP).astype(int), 0, len(pyin_f0) - 1)
    theirs = pyin_f0[index]
    ours_voiced, theirs_voiced = ours[:, 1] > 0, theirs > 0
    both = ours_voiced & theirs_voiced
    cents = 1200 * np.abs(np.log2(ours[both, 1] / theirs[both]))
    return float(np.mean(cents < 50)), float(np.mean(ours_voiced == theirs_voiced)), int(both.sum())


def _best_lag(ours, times, f0):
    results = {lag_ms: _agreement(ours, times, f0, lag_ms / 1000) for lag_ms in range(0, 44, 4)}
    lag_ms = max(results, key=lambda lag: results[lag][0] + results[lag][1])
    return lag_ms, results[lag_ms]


@pytest.fixture(scope="module")
def reverberant_melody(tmp_path_factory) -> Path:
    audio, _ = render_melody(sample_rate_hz=48000, room_rt60_s=0.35, breath_db=-34.0, transpose_semitones=-5)
    path = tmp_path_factory.mktemp("melody") / "melody_room.wav"
    sf.write(str(path), audio[: 9 * 48000], 48000, subtype="FLOAT")
    return path


def test_melody_with_vibrato_breath_and_room(reverberant_melody, tmp_path) -> None:
    ours = _analyze(reverberant_melody, tmp_path)
    lag_ms, (pitch, voicing, both) = _best_lag(ours, *_pyin(reverberant_melody))
    print(f"melody: lag {lag_ms} ms, pitch agreement {pitch:.3f}, voicing {voicing:.3f}, {both} frames")
    assert both > 500
    assert pitch >= 0.9 and voicing >= 0.9
    assert lag_ms <= 32


@pytest.mark.parametrize("speech", SPEECH, ids=lambda p: p.stem)
def test_recorded_speech(speech, tmp_path) -> None:
    if not speech.is_file():
        pytest.fail(f"{speech} is missing: ./setup.sh installs alsa-utils, which ships it")
    ours = _analyze(speech, tmp_path)
    lag_ms, (pitch, voicing, both) = _best_lag(ours, *_pyin(speech))
    print(f"{speech.stem}: lag {lag_ms} ms, pitch agreement {pitch:.3f}, voicing {voicing:.3f}, {both} frames")
    assert both > 40
    assert pitch >= 0.9 and voicing >= 0.9
