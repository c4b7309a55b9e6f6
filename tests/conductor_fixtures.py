"""Shared pieces of the conductor tests: synthetic leader frames and a tiny exported conductor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from engine.features.frames import CHROMA, F0, LOUDNESS, N_FEATURES, ONSET, VOICING
from training.conductor.export import export_conductor
from training.conductor.model import Conductor, ModelConfig

TINY = ModelConfig(d_model=32, layers=1, heads=2, feedforward=64, dropout=0.0)


def melody_frames(seconds: float = 12.0, seed: int = 0, silent_from_s: float | None = None) -> np.ndarray:
    """Analysis frames of a leader playing quarter notes at 120 BPM on a C major scale."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 250)
    frames = np.zeros((n, N_FEATURES))
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    for i in range(n):
        note = scale[(i // 125) % len(scale)]
        position = i % 125
        voiced = position < 110
        frames[i, F0] = 440.0 * 2 ** ((note - 69) / 12) if voiced else 0.0
        frames[i, VOICING] = 0.95 if voiced else 0.05
        frames[i, LOUDNESS] = -25.0 - position * 0.05 if voiced else -90.0
        frames[i, ONSET] = 0.008 if position == 2 else 0.0005 * rng.random()
        frames[i, CHROMA] = 0.02
        frames[i, 4 + note % 12] = 0.8 if voiced else 0.02
    if silent_from_s is not None:
        quiet = slice(int(silent_from_s * 250), None)
        frames[quiet, F0], frames[quiet, VOICING], frames[quiet, LOUDNESS], frames[quiet, ONSET] = 0.0, 0.0, -100.0, 0.0
    return frames


def tiny_conductor(seed: int = 0) -> Conductor:
    torch.manual_seed(seed)
    return Conductor(TINY).eval()


def export_tiny_conductor(folder: Path, seed: int = 0) -> tuple[Path, Conductor]:
    model = tiny_conductor(seed)
    path = folder / "conductor.onnx"
    export_conductor(model, path, config={"model": TINY.to_dict()}, training={"steps": 0}, leader_loudness_db=-30.0,
                     force=True)
    return path, model


def edit_sidecar(path: Path, **changes) -> None:
    side = path.with_suffix(".json")
    sidecar = json.loads(side.read_text())
    sidecar.update(changes)
    side.write_text(json.dumps(sidecar))
