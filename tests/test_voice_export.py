"""Streaming ONNX: stepped frame by frame it equals the torch decoder run over the sequence;
the engine refuses models whose sidecar is missing or disagrees with it, saying why."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.errors import TuttiError
from engine.models.decoder import DecoderBatch, load_decoder_info, open_session, sidecar_path
from tests.voice_models import export_tiny, tiny_decoder


def _sequence(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n_frames)
    f0 = np.stack([110.0 * 2 ** (np.sin(t / 9.0)), 440.0 * 2 ** (np.cos(t / 13.0) / 2)]).astype(np.float32)
    f0[0, 20:30] = 0.0  # an unvoiced gap
    loud = np.stack([-30.0 + 20 * np.sin(t / 7.0), -50.0 + 10 * np.cos(t / 5.0)]).astype(np.float32)
    return f0, loud


def test_onnx_stepped_equals_torch_sequence(tmp_path) -> None:
    path = export_tiny(tmp_path)
    model = tiny_decoder()
    f0, loud = _sequence(120)
    instrument = np.array([0, 1], dtype=np.int64)
    with torch.no_grad():
        amps, noise, _ = model(torch.from_numpy(f0), torch.from_numpy(loud), torch.from_numpy(instrument),
                               model.initial_state(2))
    batch = DecoderBatch(load_decoder_info(path), 2)
    batch.instrument[:] = instrument
    stepped_amps, stepped_noise = [], []
    for k in range(f0.shape[1]):  # one ORT call per frame, state carried, never reset
        batch.f0_hz[:] = f0[:, k]
        batch.loudness_db[:] = loud[:, k]
        batch.step()
        stepped_amps.append(batch.harmonic_amplitudes.copy())
        stepped_noise.append(batch.noise_magnitudes.copy())
    stepped_amps = np.stack(stepped_amps, axis=1)
    stepped_noise = np.stack(stepped_noise, axis=1)
    np.testing.assert_allclose(stepped_amps, amps.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stepped_noise, noise.numpy(), rtol=1e-4, atol=1e-7)
    assert np.abs(np.diff(stepped_amps[0, :, 0])).max() > 1e-4  # it really changes over time
    assert not np.allclose(stepped_amps[0], stepped_amps[1])  # the two slots are independent voices
    batch.reset()
    batch.f0_hz[:] = f0[:, 0]
    batch.loudness_db[:] = loud[:, 0]
    batch.step()
    np.testing.assert_allclose(batch.harmonic_amplitudes, stepped_amps[:, 0], rtol=1e-4, atol=1e-6)


def test_onnx_has_named_io_batch_axis_and_pinned_opset(tmp_path) -> None:
    import onnx

    path = export_tiny(tmp_path)
    graph = onnx.load(str(path))
    assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [17]
    session = open_session(load_decoder_info(path))
    assert [i.name for i in session.get_inputs()] == ["f0_hz", "loudness_db", "instrument", "state"]
    assert [o.name for o in session.get_outputs()] == ["harmonic_amplitudes", "noise_magnitudes", "state_out"]
    assert session.get_inputs()[3].shape == [1, "batch", 32]
    sidecar = json.loads(sidecar_path(path).read_text())
    for key in ("kind", "instruments", "sample_rate_hz", "frame_rate_hz", "n_harmonics", "n_noise_bands",
                "feature_version", "training_manifest_sha256", "metrics", "config", "onnx_sha256"):
        assert key in sidecar


def _edit_sidecar(path, **changes) -> None:
    side = sidecar_path(path)
    data = json.loads(side.read_text())
    data.update(changes)
    side.write_text(json.dumps(data))


@pytest.mark.parametrize("change, message", [
    ({"feature_version": 99}, "feature version 99"),
    ({"frame_rate_hz": 100}, "frame rate is 100"),
    ({"n_harmonics": 30}, "harmonic_amplitudes has 24 values, the sidecar says 30"),
    ({"kind": "something-else"}, "kind"),
    ({"onnx_sha256": "0" * 64}, "sha256 differs"),
])
def test_loader_refuses_a_disagreeing_sidecar(tmp_path, change, message) -> None:
    path = export_tiny(tmp_path)
    _edit_sidecar(path, **change)
    with pytest.raises(TuttiError, match=message):
        open_session(load_decoder_info(path))


def test_loader_refuses_missing_sidecar_and_corrupt_onnx(tmp_path) -> None:
    path = export_tiny(tmp_path)
    sidecar_path(path).rename(tmp_path / "elsewhere.json")
    with pytest.raises(TuttiError, match="sidecar tiny.json is missing"):
        load_decoder_info(path)
    (tmp_path / "elsewhere.json").rename(sidecar_path(path))
    path.write_bytes(b"not an onnx graph")
    from engine.models.decoder import file_sha256

    _edit_sidecar(path, onnx_sha256=file_sha256(path))  # even with a matching hash
    with pytest.raises(TuttiError, match="onnxruntime cannot load it"):
        open_session(load_decoder_info(path))


def test_export_needs_force_and_never_replaces_a_foreign_file(tmp_path) -> None:
    path = export_tiny(tmp_path)
    first = path.read_bytes()
    with pytest.raises(TuttiError, match="add --force"):
        export_tiny(tmp_path, seed=1)
    assert path.read_bytes() == first
    export_tiny(tmp_path, seed=1, force=True)
    assert path.read_bytes() != first
    foreign = tmp_path / "mine.onnx"
    foreign.write_bytes(b"user data")
    with pytest.raises(TuttiError, match="Tutti did not write it"):
        export_tiny(tmp_path, name="mine", force=True)
    assert foreign.read_bytes() == b"user data"
