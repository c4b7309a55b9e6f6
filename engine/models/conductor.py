"""The exported conductor in ONNX: its sidecar checked against the engine's contract, and a runner.

A conductor model is `NAME.onnx` beside `NAME.json`. One call reads inputs [1, CONTEXT_STEPS,
N_INPUTS] (float32, engine/conductor/inputs.py) and returns bins [1, HORIZON_BINS,
OUTPUT_WIDTH] (engine/conductor/contract.py). `load_conductor_info` refuses a model trained
for other roles, inputs, outputs, step or horizon than the engine plays, naming the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.conductor import contract
from engine.conductor.inputs import INPUT_FIELDS, N_INPUTS
from engine.errors import TuttiError
from engine.models.decoder import live_session_options
from engine.models.sidecar import check_sha256, read_sidecar, require

SIDECAR_FORMAT = 1
INPUT_NAME, OUTPUT_NAME = "inputs", "bins"
DEFAULT_CONDUCTOR = Path(__file__).resolve().parents[2] / "exported_models" / "conductor.onnx"


def engine_contract() -> dict[str, Any]:
    """What a conductor must have been trained for, as its sidecar records it."""
    return {
        "roles": list(contract.ROLES),
        "input_fields": [list(field) for field in INPUT_FIELDS],
        "output_fields": [list(field) for field in contract.output_fields()],
        "step_frames": contract.STEP_FRAMES,
        "context_steps": contract.CONTEXT_STEPS,
        "bin_frames": contract.BIN_FRAMES,
        "horizon_bins": contract.HORIZON_BINS,
        "lookahead_frames": contract.LOOKAHEAD_FRAMES,
        "note_ranges": {role: list(span) for role, span in contract.NOTE_RANGES.items()},
    }


@dataclass(frozen=True)
class ConductorInfo:
    onnx_path: Path
    sidecar: dict[str, Any]
    leader_loudness_db: float  # the training leaders' mean level: the followers' levels are relative to it


def load_conductor_info(onnx_path: Path) -> ConductorInfo:
    """Read and check the sidecar of `onnx_path` against the engine's conductor contract."""
    onnx_path = Path(onnx_path)
    sidecar = read_sidecar(onnx_path, contract.MODEL_KIND, SIDECAR_FORMAT, "launch.py train-conductor --export")
    for key, wanted in engine_contract().items():
        have = sidecar.get(key)
        require(have == wanted, onnx_path, f"it was trained with {key} = {have!r}, the engine expects {wanted!r}; "
                "retrain it (launch.py train-conductor)")
    level = sidecar.get("leader_loudness_db")
    require(isinstance(level, (int, float)) and -100.0 < level < 0.0, onnx_path,
            f"its sidecar's leader_loudness_db is {level!r}, not a level in dB; re-export it")
    check_sha256(onnx_path, sidecar)
    return ConductorInfo(onnx_path, sidecar, float(level))


class ConductorRunner:
    """One ORT session over the conductor: `run(context)` -> bins [HORIZON_BINS, OUTPUT_WIDTH]."""

    def __init__(self, info: ConductorInfo) -> None:
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(str(info.onnx_path), live_session_options(), providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT raises its own types for a corrupt or foreign graph
            raise TuttiError(f"model {info.onnx_path} is refused: onnxruntime cannot load it "
                             f"({' '.join(str(err).split())[:120]}); re-export it") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        require([i.name for i in inputs] == [INPUT_NAME] and [o.name for o in outputs] == [OUTPUT_NAME], info.onnx_path,
                f"its graph reads {[i.name for i in inputs]} and writes {[o.name for o in outputs]}, not [{INPUT_NAME!r}] -> [{OUTPUT_NAME!r}]")
        require(list(inputs[0].shape) == [1, contract.CONTEXT_STEPS, N_INPUTS], info.onnx_path,
                f"its input is {inputs[0].shape}, the engine sends [1, {contract.CONTEXT_STEPS}, {N_INPUTS}]")
        self._input = np.zeros((1, contract.CONTEXT_STEPS, N_INPUTS), dtype=np.float32)

    def run(self, context: np.ndarray) -> np.ndarray:
        self._input[0] = context
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: self._input})[0][0]
