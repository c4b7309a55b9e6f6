"""A `model:NAME` voice plays through `perform`: its f0 follows the leader at the configured
interval (in cents), with no NaN; one batched call equals separate calls per voice."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from engine.config import load_config
from engine.errors import TuttiError
from engine.features.streaming import StreamingAnalyzer
from engine.models.decoder import MODEL_KIND, DecoderBatch, load_decoder_info
from engine.offline import perform_file
from engine.voices import build_voices
from engine.voices.neural import MODELS_DIR, resolve_model
from tests.signals import cents, note_sequence
from tests.voice_models import export_tiny

RATE = 48000
NOTES_HZ = (196.0, 220.0, 246.94, 293.66)
NOTE_S, GAP_S, LEAD_S = 0.4, 0.1, 0.1


def test_model_voice_follows_the_leader_through_perform(tmp_path) -> None:
    model = export_tiny(tmp_path)
    audio, onsets = note_sequence(f0s_hz=NOTES_HZ, sample_rate_hz=RATE, note_s=NOTE_S, gap_s=GAP_S, lead_s=LEAD_S, amplitude=0.3)
    melody = tmp_path / "melody.wav"
    sf.write(melody, audio, RATE, subtype="FLOAT")
    config = load_config(sets=[f"voices.bass.kind=model:{model}/bass", f"voices.strings.kind=model:{model}/strings"])
    perform_file(melody, tmp_path / "take", config)
    analyzer = StreamingAnalyzer(RATE)
    for name in ("bass", "strings", "mix"):
        out, _ = sf.read(tmp_path / "take" / f"{name}.wav")
        assert np.all(np.isfinite(out)), name
    for name, interval in (("bass", config.voices[0][1].interval_semitones), ("strings", 4.0)):
        out, _ = sf.read(tmp_path / "take" / f"{name}.wav", dtype="float32")
        assert np.sqrt(np.mean(out**2)) > 1e-3, f"{name} is silent"
        frames = analyzer.analyze(out)
        times = frames.times_s
        for onset, f0 in zip(onsets, NOTES_HZ):
            middle = (times > onset + 0.15) & (times < onset + NOTE_S - 0.05) & (frames.voicing > 0.5)
            assert middle.sum() > 20, f"{name} is unvoiced in the note at {f0} Hz"
            error = cents(np.median(frames.f0_hz[middle]), f0 * 2 ** (interval / 12))
            assert abs(error) < 20.0, f"{name}: {error:.1f} cents off at {f0} Hz"


def test_one_batched_call_equals_separate_calls(tmp_path) -> None:
    info = load_decoder_info(export_tiny(tmp_path))
    group = DecoderBatch(info, 6)
    singles = [DecoderBatch(info, 1) for _ in range(6)]
    rng = np.random.default_rng(0)
    for _ in range(20):
        f0 = rng.uniform(60, 800, 6).astype(np.float32)
        loud = rng.uniform(-80, -10, 6).astype(np.float32)
        group.f0_hz[:], group.loudness_db[:], group.instrument[:] = f0, loud, np.arange(6) % 2
        group.step()
        for slot, single in enumerate(singles):
            single.f0_hz[0], single.loudness_db[0], single.instrument[0] = f0[slot], loud[slot], slot % 2
            single.step()
            np.testing.assert_allclose(group.harmonic_amplitudes[slot], single.harmonic_amplitudes[0], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(group.state[:, slot], single.state[:, 0], rtol=1e-5, atol=1e-6)


def test_model_kinds_resolve_and_unknown_instruments_are_named(tmp_path) -> None:
    assert resolve_model("model:ensemble/bass", tmp_path) == (tmp_path / "ensemble.onnx", "bass")
    assert resolve_model("model:solo", tmp_path) == (tmp_path / "solo.onnx", None)
    info = load_decoder_info(export_tiny(tmp_path))
    with pytest.raises(TuttiError, match="no instrument 'tuba': use one of bass, strings"):
        info.instrument_index("tuba")
    with pytest.raises(TuttiError, match="name one"):
        info.instrument_index(None)
    with pytest.raises(TuttiError, match="nothing-here.onnx does not exist"):
        build_voices(load_config(sets=["voices.bass.kind=model:nothing-here"]))


SHIPPED = sorted(path for path in MODELS_DIR.glob("*.onnx")  # the voice decoders (the conductor ships beside them)
                 if json.loads(path.with_suffix(".json").read_text()).get("kind") == MODEL_KIND)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_models_load_and_beat_their_baselines(path) -> None:
    info = load_decoder_info(path)
    DecoderBatch(info, 6).step()
    held_out = info.sidecar["metrics"]["held_out_test"]
    assert held_out, "a shipped model records held-out metrics"
    for voice, row in held_out.items():
        assert voice in info.instruments
        model = row["model"]["spectral_distance"]
        assert model < 0.9 * row["mean_spectrum"]["spectral_distance"] and model < row["sine"]["spectral_distance"], voice


@pytest.mark.parametrize("path", SHIPPED[:1], ids=[p.stem for p in SHIPPED[:1]])
def test_shipped_bass_voice_plays_the_demo_an_octave_down(tmp_path, path) -> None:
    audio, onsets = note_sequence(f0s_hz=NOTES_HZ, sample_rate_hz=RATE, note_s=NOTE_S, gap_s=GAP_S, lead_s=LEAD_S, amplitude=0.3)
    melody = tmp_path / "melody.wav"
    sf.write(melody, audio, RATE, subtype="FLOAT")
    perform_file(melody, tmp_path / "take", load_config(sets=[f"voices.bass.kind=model:{path.stem}/bass"]))
    out, _ = sf.read(tmp_path / "take" / "bass.wav", dtype="float32")
    assert np.all(np.isfinite(out)) and np.sqrt(np.mean(out**2)) > 1e-3
    frames = StreamingAnalyzer(RATE).analyze(out)
    for onset, f0 in zip(onsets, NOTES_HZ):
        middle = (frames.times_s > onset + 0.15) & (frames.times_s < onset + NOTE_S - 0.05) & (frames.voicing > 0.5)
        assert middle.sum() > 20
        assert abs(cents(np.median(frames.f0_hz[middle]), f0 / 2)) < 20.0
