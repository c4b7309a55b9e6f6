"""Each voice's dry output (harmonic + noise, before reverb and mixer) is held against a golden
fingerprint recorded before the engine-process work began, so models trained meanwhile stay
valid: 400 samples per voice at fixed positions and the RMS of every 10 ms of the demo's first
3 s, reference voices at their configured intervals, blocks of 128.

Regenerate (only for a deliberate change of the synth, which retrains every model):
`TUTTI_REGENERATE_GOLDEN=1 python -m pytest tests/test_golden_voices.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from demo.melody import DEMO_PATH
from engine.audio_io import read_mono
from tests.reference_config import reference_config
from engine.processor import BlockProcessor

GOLDEN = Path(__file__).parent / "golden" / "dry_voices.json"
SR = 48000


def dry_fingerprint() -> dict:
    config = reference_config(sets=["synth.reverb=false", "midi.virtual_port=false"])
    audio = read_mono(DEMO_PATH, SR)[: 3 * SR]
    voices, _ = BlockProcessor(config).render(audio, 128)
    positions = np.linspace(0, len(audio) - 1, 400).astype(int)
    fingerprint = {}
    for name, voice in zip(config.voice_names, voices.astype(np.float64)):
        windows = voice[: len(voice) // 480 * 480].reshape(-1, 480)
        fingerprint[name] = {
            "samples": voice[positions].tolist(),
            "rms_10ms": np.sqrt(np.mean(windows**2, axis=1)).tolist(),
        }
    return fingerprint


def test_dry_voice_output_matches_the_golden_fingerprint() -> None:
    fingerprint = dry_fingerprint()
    if os.environ.get("TUTTI_REGENERATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(fingerprint))
    golden = json.loads(GOLDEN.read_text())
    assert set(fingerprint) == set(golden)
    for name, expected in golden.items():
        assert max(np.abs(fingerprint[name]["rms_10ms"])) > 1e-3  # the voice plays
        np.testing.assert_allclose(fingerprint[name]["samples"], expected["samples"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(fingerprint[name]["rms_10ms"], expected["rms_10ms"], rtol=1e-6, atol=1e-9)
