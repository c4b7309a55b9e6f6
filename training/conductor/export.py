"""Export a trained conductor to ONNX (the newest step's prediction, a fixed [1, CONTEXT_STEPS,
N_INPUTS] input, a pinned opset) with the sidecar the engine checks before it plays it."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from engine.conductor import contract
from engine.conductor.inputs import N_INPUTS
from engine.features.frames import FEATURE_VERSION
from engine.models.conductor import INPUT_NAME, OUTPUT_NAME, SIDECAR_FORMAT, engine_contract
from engine.models.decoder import OPSET
from engine.models.sidecar import claim_model_path, file_sha256, sidecar_path
from engine.rates import CONTROL_RATE_HZ
from engine.safe_files import atomic_write_bytes, atomic_write_text
from training.conductor.model import Conductor, LastStep, parameter_count


def onnx_bytes(model: Conductor) -> bytes:
    example = torch.zeros(1, contract.CONTEXT_STEPS, N_INPUTS)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on the attention mask's constant shape
        torch.onnx.export(LastStep(model).eval(), (example,), buffer, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def export_conductor(model: Conductor, path: Path, *, config: dict[str, Any], training: dict[str, Any],
                     leader_loudness_db: float, metrics: dict[str, Any] | None = None, force: bool = False) -> dict[str, Any]:
    """Write `path` (.onnx) and its sidecar (.json) atomically; returns the sidecar.
    `leader_loudness_db`: the training leaders' mean level (voiced steps' peak loudness)."""
    path = Path(path)
    claim_model_path(path, force, contract.MODEL_KIND, "train-conductor")
    data = onnx_bytes(model.eval())
    atomic_write_bytes(path, data)
    sidecar = {
        "kind": contract.MODEL_KIND,
        "sidecar_format": SIDECAR_FORMAT,
        "feature_version": FEATURE_VERSION,
        "frame_rate_hz": CONTROL_RATE_HZ,
        **engine_contract(),
        "period_frames": contract.PERIOD_FRAMES,
        "nominal_device_latency_s": contract.NOMINAL_DEVICE_LATENCY_S,
        "leader_loudness_db": float(leader_loudness_db),
        "inputs": {INPUT_NAME: [1, contract.CONTEXT_STEPS, N_INPUTS]},
        "outputs": {OUTPUT_NAME: [1, contract.HORIZON_BINS, contract.OUTPUT_WIDTH]},
        "opset": OPSET,
        "parameters": parameter_count(model),
        "onnx_sha256": file_sha256(path),
        "onnx_bytes": len(data),
        "training": training,
        "metrics": metrics or {},
        "config": config,
    }
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=1, sort_keys=True) + "\n")
    return sidecar
