"""Streaming ONNX export: one call per control frame, GRU state in and out, a batch axis, a
pinned opset, named inputs and outputs (engine/models/decoder.py states the contract), and the
JSON sidecar the engine checks before it plays a model."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.features.frames import FEATURE_VERSION
from engine.models.sidecar import claim_model_path
from engine.models.decoder import (
    INPUT_NAMES,
    MODEL_KIND,
    OPSET,
    OUTPUT_NAMES,
    SIDECAR_FORMAT,
    file_sha256,
    sidecar_path,
)
from engine.rates import CONTROL_RATE_HZ
from engine.safe_files import atomic_write_bytes, atomic_write_text
from training.voice.decoder import Decoder, parameter_count


class StreamingStep(nn.Module):
    """The decoder for one frame: [B] inputs and [L, B, U] state -> [B, H], [B, N], state."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, f0_hz, loudness_db, instrument, state):
        amplitudes, noise, state_out = self.decoder(f0_hz.unsqueeze(1), loudness_db.unsqueeze(1), instrument, state)
        return amplitudes[:, 0], noise[:, 0], state_out


def onnx_bytes(decoder: Decoder) -> bytes:
    """The serialised streaming graph (batch axis dynamic)."""
    config = decoder.config
    batch = 2
    example = (
        torch.full((batch,), 220.0), torch.full((batch,), -30.0), torch.zeros(batch, dtype=torch.int64),
        torch.zeros(config.gru_layers, batch, config.gru_units),
    )
    axes = {name: {0: "batch"} for name in ("f0_hz", "loudness_db", "instrument", "harmonic_amplitudes", "noise_magnitudes")}
    axes |= {"state": {1: "batch"}, "state_out": {1: "batch"}}
    buffer = io.BytesIO()
    step = StreamingStep(decoder).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on GRU shapes: the batch axis is tested
        torch.onnx.export(step, example, buffer, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def export_decoder(
    decoder: Decoder, path: Path, *, config: dict[str, Any], manifest_sha256: str, metrics: dict[str, Any],
    steps: int, force: bool = False,
) -> dict[str, Any]:
    """Write `path` (.onnx) and its sidecar (.json) atomically; returns the sidecar."""
    path = Path(path)
    claim_model_path(path, force, MODEL_KIND, "export")
    decoder_cfg = decoder.config
    data = onnx_bytes(decoder.eval())
    atomic_write_bytes(path, data)
    sidecar = {
        "kind": MODEL_KIND,
        "sidecar_format": SIDECAR_FORMAT,
        "instruments": list(decoder_cfg.instruments),
        "instrument": decoder_cfg.instruments[0] if len(decoder_cfg.instruments) == 1 else None,
        "sample_rate_hz": decoder_cfg.sample_rate_hz,
        "frame_rate_hz": CONTROL_RATE_HZ,
        "n_harmonics": decoder_cfg.n_harmonics,
        "n_noise_bands": decoder_cfg.n_noise_bands,
        "noise_top_hz": decoder_cfg.nyquist_hz,
        "gru_layers": decoder_cfg.gru_layers,
        "gru_units": decoder_cfg.gru_units,
        "parameters": parameter_count(decoder),
        "feature_version": FEATURE_VERSION,
        "opset": OPSET,
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "onnx_sha256": file_sha256(path),
        "onnx_bytes": len(data),
        "training_manifest_sha256": manifest_sha256,
        "training_steps": steps,
        "metrics": metrics,
        "config": config,
    }
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=1, sort_keys=True) + "\n")
    return sidecar
