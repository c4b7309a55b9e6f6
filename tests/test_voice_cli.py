"""train-instrument on a folder of recordings, export, and the one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

import launch
from training.voice.config import OVERLAYS, VoiceRunConfig, apply_overrides
from training.voice.decoder import Decoder
from tests.voice_models import synthetic_stems

FAST = ["--overlay", "smoke", "--voice-set", "train.max_steps=3", "--voice-set", "train.window_s=0.5",
        "--voice-set", "train.batch_size=2"]


def _recordings(folder, rates=(16000, 16000)) -> None:
    folder.mkdir()
    stem = synthetic_stems()[1]
    for number, rate in enumerate(rates):
        sf.write(folder / f"take{number}.wav", stem.audio if rate == 16000 else np.zeros(rate), rate)


def test_train_export_and_refuse_a_second_export_without_force(tmp_path, capsys) -> None:
    _recordings(tmp_path / "takes")
    run = tmp_path / "run"
    assert launch.main(["train-instrument", "--stems", str(tmp_path / "takes"), "--name", "cello", "--run-dir", str(run), *FAST]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["instruments"] == ["cello"] and len(summary["training_manifest_sha256"]) == 64
    assert (run / "curves.png").is_file() and (run / "best.pt").is_file()
    model = tmp_path / "models" / "cello.onnx"
    assert launch.main(["export", "--run-dir", str(run), "--out", str(model)]) == 0
    sidecar = json.loads(model.with_suffix(".json").read_text())
    assert sidecar["instruments"] == ["cello"] and sidecar["n_harmonics"] == 32 and sidecar["training_steps"] == 3
    before = model.read_bytes()
    assert launch.main(["export", "--run-dir", str(run), "--out", str(model)]) == 2
    assert "add --force" in capsys.readouterr().err and model.read_bytes() == before


def test_bad_recordings_get_one_line_errors(tmp_path, capsys) -> None:
    _recordings(tmp_path / "mixed", rates=(16000, 44100))
    assert launch.main(["train-instrument", "--stems", str(tmp_path / "mixed"), "--name", "x", "--run-dir", str(tmp_path / "r1"), *FAST]) == 2
    assert "take1.wav is at 44100 Hz, take0.wav at 16000 Hz" in capsys.readouterr().err
    (tmp_path / "silent").mkdir()
    sf.write(tmp_path / "silent" / "quiet.wav", np.zeros(32000), 16000)
    assert launch.main(["train-instrument", "--stems", str(tmp_path / "silent"), "--name", "x", "--run-dir", str(tmp_path / "r2"), *FAST]) == 2
    assert "silent or unvoiced" in capsys.readouterr().err
    assert not (tmp_path / "r2" / "last.pt").exists()


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_overlay_builds_and_takes_a_gradient(overlay: str) -> None:
    config = apply_overrides(VoiceRunConfig(), OVERLAYS[overlay]).decoder
    model = Decoder(config)
    f0 = torch.full((1, 10), 220.0)
    amps, noise, state = model(f0, torch.full((1, 10), -20.0), torch.zeros(1, dtype=torch.long), model.initial_state(1))
    (amps.sum() + noise.sum()).backward()
    assert amps.shape == (1, 10, config.n_harmonics) and state.shape == (config.gru_layers, 1, config.gru_units)
    assert model.gru.weight_hh_l0.grad is not None
