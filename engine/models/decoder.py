"""Streaming instrument decoders in ONNX: the sidecar check and the batched step runner.

A decoder model is `NAME.onnx` beside `NAME.json` (its sidecar). One call steps B voices by one
4 ms control frame: inputs f0_hz [B], loudness_db [B] (float32), instrument [B] (int64, a row
of the sidecar's `instruments`), state [layers, B, units]; outputs harmonic_amplitudes [B, H]
(linear peak amplitude per harmonic, zero at and above the training Nyquist), noise_magnitudes
[B, N] (engine/synth band magnitudes, bands spanning 0..training Nyquist), state_out.
`load_decoder_info` refuses a model whose sidecar is missing, damaged, of another kind,
feature version or frame rate, whose sizes disagree with the ONNX graph, or whose ONNX bytes
are not the ones the sidecar was written for, each with a one-line TuttiError saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import TuttiError
from engine.models.sidecar import check_sha256, file_sha256, read_sidecar, require, sidecar_path  # noqa: F401 (re-exported)
from engine.rates import TRAINING_SAMPLE_RATES_HZ

MODEL_KIND = "tutti-ddsp-decoder"
SIDECAR_FORMAT = 1
INPUT_NAMES = ("f0_hz", "loudness_db", "instrument", "state")
OUTPUT_NAMES = ("harmonic_amplitudes", "noise_magnitudes", "state_out")
OPSET = 17


@dataclass(frozen=True)
class DecoderInfo:
    """What the engine needs to run a decoder, read from its sidecar and checked."""

    onnx_path: Path
    instruments: tuple[str, ...]
    training_sample_rate_hz: int
    n_harmonics: int
    n_noise_bands: int
    gru_layers: int
    gru_units: int
    sidecar: dict[str, Any]

    @property
    def nyquist_hz(self) -> float:
        """Top of the noise bands and limit of the partials (DESIGN.md section 3)."""
        return self.training_sample_rate_hz / 2.0

    def instrument_index(self, name: str | None) -> int:
        if name is None:
            if len(self.instruments) == 1:
                return 0
            raise TuttiError(f"{self.onnx_path.name} holds {', '.join(self.instruments)}: name one, e.g. model:{self.onnx_path.stem}/{self.instruments[0]}")
        if name not in self.instruments:
            raise TuttiError(f"{self.onnx_path.name} has no instrument {name!r}: use one of {', '.join(self.instruments)}")
        return self.instruments.index(name)


def load_decoder_info(onnx_path: Path) -> DecoderInfo:
    """Read and check the sidecar of `onnx_path` against the engine and the ONNX file."""
    onnx_path = Path(onnx_path)
    sidecar = read_sidecar(onnx_path, MODEL_KIND, SIDECAR_FORMAT, "launch.py export")
    require(sidecar.get("sample_rate_hz") in TRAINING_SAMPLE_RATES_HZ, onnx_path,
             f"training sample rate {sidecar.get('sample_rate_hz')!r} Hz is not 16000 or 24000")
    try:
        info = DecoderInfo(
            onnx_path, tuple(str(x) for x in sidecar["instruments"]), int(sidecar["sample_rate_hz"]),
            int(sidecar["n_harmonics"]), int(sidecar["n_noise_bands"]), int(sidecar["gru_layers"]),
            int(sidecar["gru_units"]), sidecar,
        )
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise TuttiError(f"model {onnx_path} is refused: its sidecar lacks or garbles {err}; re-export it") from None
    require(len(info.instruments) > 0 and min(info.n_harmonics, info.n_noise_bands, info.gru_layers, info.gru_units) > 0,
             onnx_path, "its sidecar names no instrument or a size of 0 or less; re-export it")
    check_sha256(onnx_path, sidecar)
    return info


def live_session_options():
    """ORT options for per-frame steps on the audio path: 1 intra-op thread, no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def open_session(info: DecoderInfo):
    """A CPU-provider session, with its graph's names and sizes checked against the sidecar."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(info.onnx_path), live_session_options(), providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own types for a corrupt or foreign graph
        raise TuttiError(f"model {info.onnx_path} is refused: onnxruntime cannot load it ({' '.join(str(err).split())[:120]}); re-export it") from None
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    require(tuple(inputs) == INPUT_NAMES and tuple(outputs) == OUTPUT_NAMES, info.onnx_path,
             f"its inputs {tuple(inputs)} and outputs {tuple(outputs)} are not {INPUT_NAMES} -> {OUTPUT_NAMES}")
    for name, size in (("harmonic_amplitudes", info.n_harmonics), ("noise_magnitudes", info.n_noise_bands)):
        require(outputs[name][-1] == size, info.onnx_path, f"{name} has {outputs[name][-1]} values, the sidecar says {size}")
    state = inputs["state"]
    require(state[0] == info.gru_layers and state[-1] == info.gru_units, info.onnx_path,
             f"its state is {state}, the sidecar says {info.gru_layers} layers of {info.gru_units}")
    return session


_SHARED_SESSIONS: dict[tuple[str, str], Any] = {}


def shared_session(info: DecoderInfo):
    """One session per model file and content in this process: every voice of a model, alone
    or in a group, runs on it (ORT sessions take concurrent runs; each batch binds its own
    arrays). Keyed by the checked sha256, so a model rewritten in place opens anew."""
    key = (str(info.onnx_path.resolve()), str(info.sidecar.get("onnx_sha256")))
    session = _SHARED_SESSIONS.get(key)
    if session is None:
        session = _SHARED_SESSIONS[key] = open_session(info)
    return session


class DecoderBatch:
    """B voice slots of one decoder, stepped together in one ORT call per control frame.

    Write each slot's inputs into `f0_hz`, `loudness_db` and `instrument` (preallocated), call
    `step()`, read `harmonic_amplitudes` and `noise_magnitudes`. Inputs and outputs are bound
    once (ORT I/O binding over these numpy arrays), and the GRU state is carried in `state`
    across calls; `reset(slot)` silences one slot's memory. The arrays are never replaced.
    """

    def __init__(self, info: DecoderInfo, batch: int, session=None) -> None:
        import onnxruntime as ort

        if batch < 1:
            raise TuttiError(f"decoder batch {batch}: give 1 or more voice slots")
        self.info = info
        self.batch = batch
        self.session = session if session is not None else shared_session(info)
        self.f0_hz = np.zeros(batch, dtype=np.float32)
        self.loudness_db = np.full(batch, -100.0, dtype=np.float32)
        self.instrument = np.zeros(batch, dtype=np.int64)
        self.state = np.zeros((info.gru_layers, batch, info.gru_units), dtype=np.float32)
        self._state_out = np.zeros_like(self.state)
        self.harmonic_amplitudes = np.zeros((batch, info.n_harmonics), dtype=np.float32)
        self.noise_magnitudes = np.zeros((batch, info.n_noise_bands), dtype=np.float32)
        self._binding = self.session.io_binding()
        self._values = []  # the OrtValues must outlive the binding
        for name, array in zip(INPUT_NAMES, (self.f0_hz, self.loudness_db, self.instrument, self.state)):
            value = ort.OrtValue.ortvalue_from_numpy(array)
            self._values.append(value)
            self._binding.bind_ortvalue_input(name, value)
        for name, array in zip(OUTPUT_NAMES, (self.harmonic_amplitudes, self.noise_magnitudes, self._state_out)):
            value = ort.OrtValue.ortvalue_from_numpy(array)
            self._values.append(value)
            self._binding.bind_ortvalue_output(name, value)

    def step(self) -> None:
        """One control frame for every slot; the state carries over to the next call."""
        self.session.run_with_iobinding(self._binding)
        np.copyto(self.state, self._state_out)

    def reset(self, slot: int | None = None) -> None:
        """Clear the GRU memory of one slot (or of all)."""
        if slot is None:
            self.state[:] = 0.0
        else:
            self.state[:, slot] = 0.0
