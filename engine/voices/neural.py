"""Model voices: a trained decoder (ONNX, engine/models/decoder.py) driving engine/synth.

A `NeuralVoice` follows the leader at a fixed interval like the reference voices (or, with a
`role`, plays the first note of the conductor's plan for it), but its timbre comes from the
decoder: each control frame it writes the f0 (0 when silent) and loudness into its slot of a
`DecoderBatch`, steps it, and hands the controls to its `VoiceSynth`, built at the model's
training Nyquist (a harmony role plays its lowest note: one decoder slot per voice). With `owns_batch` the
voice steps a batch of its own (B = 1); an instrument group (engine/voices/groups.py) makes
the voices it plays `join` a shared batch, which it steps once per frame for all of them, and
makes a voice `leave` when it stops playing there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import TuttiError
from engine.features.frames import F0, LOUDNESS, VOICING
from engine.models.decoder import DecoderBatch, DecoderInfo, load_decoder_info
from engine.parts import PART_ACTIVE, PART_F0, PART_LOUDNESS, SILENT_DB, new_part_frame
from engine.synth.voice_synth import VoiceSynth

MODEL_PREFIX = "model:"
MODELS_DIR = Path(__file__).resolve().parents[2] / "exported_models"


def resolve_model(kind: str, models_dir: Path = MODELS_DIR) -> tuple[Path, str | None]:
    """`model:NAME` or `model:NAME/INSTRUMENT` -> (models_dir/NAME.onnx or a path, instrument)."""
    spec = kind[len(MODEL_PREFIX):]
    if ".onnx" in spec:  # a path to a model file, maybe followed by /INSTRUMENT
        cut = spec.index(".onnx") + len(".onnx")
        path, instrument = Path(spec[:cut]), spec[cut:].lstrip("/")
    else:
        name, _, instrument = spec.partition("/")
        if not name:
            raise TuttiError(f"voice kind {kind!r} names no model: write model:NAME or model:NAME/INSTRUMENT")
        path = models_dir / f"{name}.onnx"
    return path, instrument or None


class NeuralVoice:
    """A follower voice played by slot `slot` of a decoder batch (Voice protocol)."""

    def __init__(
        self,
        name: str,
        batch: DecoderBatch,
        slot: int,
        instrument: int,
        synth: VoiceSynth,
        *,
        interval_semitones: float,
        voicing_threshold: float,
        owns_batch: bool = True,
        part=None,  # noqa: ANN001 (a part source: the conductor's plan for a role; None: the interval rule)
    ) -> None:
        info = batch.info
        if synth.harmonic.n_harmonics != info.n_harmonics or synth.noise.n_bands != info.n_noise_bands:
            raise TuttiError(f"voice {name}: the synth's sizes differ from model {info.onnx_path.name}'s")
        self.name = name
        self.batch = batch
        self.slot = slot
        self.owns_batch = owns_batch
        self._synth = synth
        self._ratio = 2.0 ** (interval_semitones / 12.0)
        self._threshold = voicing_threshold
        self._amplitudes = np.zeros(info.n_harmonics)
        self._noise = np.zeros(info.n_noise_bands)
        self._f0_hz = 0.0
        self.part = part
        self._part_frame = new_part_frame()
        self._clock = np.zeros(1, dtype=np.int64)
        self._instrument = instrument
        self._own_batch = batch
        batch.instrument[slot] = instrument

    @property
    def synths(self) -> list[VoiceSynth]:
        """Its dry synth (a synth bank may hold its state)."""
        return [self._synth]

    def join(self, batch: DecoderBatch, slot: int) -> None:
        """Play from slot `slot` of a group's shared batch (same model), its GRU memory moved
        there: from now on `step` only writes the inputs; the group steps the batch and calls
        `apply`."""
        batch.state[:, slot] = self.batch.state[:, self.slot]
        batch.instrument[slot] = self._instrument
        self.batch, self.slot, self.owns_batch = batch, slot, False

    def leave(self) -> None:
        """Back to its own batch (B = 1), memory and all: it steps alone again."""
        own = self._own_batch
        if self.batch is not own:
            own.state[:, 0] = self.batch.state[:, self.slot]
            self.batch, self.slot, self.owns_batch = own, 0, True

    def attach(self, bus, tasks: list, clock: np.ndarray) -> None:  # noqa: ANN001 (ControlBus)
        """A voice playing a role reads frame numbers from `clock` and its plans from `bus`."""
        self._clock = clock
        if self.part is not None:
            self.part.attach(bus, tasks)

    @property
    def part_frame(self) -> np.ndarray | None:
        """The part frame a role voice plays now (its first note sounds); None on the interval rule."""
        return self._part_frame if self.part is not None else None

    @property
    def sounding_f0_hz(self) -> float:
        """The pitch it plays now (0 when silent), for meters and displays."""
        return self._f0_hz

    def prepare(self, frame: np.ndarray) -> None:
        """Write this frame's inputs into the batch slot (a group calls this, then steps once)."""
        if self.part is not None:
            part = self._part_frame
            self.part.fill(frame, int(self._clock[0]), part)
            self._f0_hz = part[PART_F0, 0] if part[PART_ACTIVE, 0] > 0.0 else 0.0
            self.batch.f0_hz[self.slot] = self._f0_hz
            self.batch.loudness_db[self.slot] = part[PART_LOUDNESS, 0] if self._f0_hz > 0.0 else SILENT_DB
            return
        voiced = frame[F0] > 0.0 and frame[VOICING] >= self._threshold
        self._f0_hz = frame[F0] * self._ratio if voiced else 0.0
        self.batch.f0_hz[self.slot] = self._f0_hz
        self.batch.loudness_db[self.slot] = frame[LOUDNESS]

    def apply(self) -> None:
        """Hand the stepped controls of this slot to the synth."""
        self._amplitudes[:] = self.batch.harmonic_amplitudes[self.slot]
        self._noise[:] = self.batch.noise_magnitudes[self.slot]
        self._synth.set_targets(self._f0_hz, self._amplitudes, self._noise)

    def step(self, frame: np.ndarray) -> None:
        self.prepare(frame)
        if self.owns_batch:
            self.batch.step()
            self.apply()

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        self._synth.render(out, offset, count)

    def reset(self) -> None:
        if self.part is not None:
            self.part.reset()
        self.batch.reset(self.slot)
        self._f0_hz = 0.0
        self._synth.reset()


def model_synth(info: DecoderInfo, sample_rate_hz: int, frame_samples: int, **synth_options) -> VoiceSynth:
    """A VoiceSynth sized for the model, masked at its training Nyquist."""
    return VoiceSynth(sample_rate_hz, frame_samples, info.n_harmonics, info.n_noise_bands,
                      model_nyquist_hz=info.nyquist_hz, **synth_options)


def load_voice_model(kind: str, models_dir: Path = MODELS_DIR) -> tuple[DecoderInfo, int]:
    """The checked model of a `model:` kind and the index of its instrument."""
    path, instrument = resolve_model(kind, models_dir)
    info = load_decoder_info(path)
    return info, info.instrument_index(instrument)


def build_model_voice(name: str, voice, config) -> NeuralVoice:
    """The `model:NAME[/INSTRUMENT]` voice of a [voices.NAME] table, with its own B = 1 batch."""
    import zlib

    from engine.rates import frame_samples

    info, instrument = load_voice_model(voice.kind)
    sample_rate_hz = config.engine.sample_rate_hz
    synth = model_synth(
        info, sample_rate_hz, frame_samples(sample_rate_hz), seed=zlib.crc32(name.encode()),
    )
    part = None
    if voice.role:
        from engine.conductor.task import role_part

        part = role_part(voice.role)
    return NeuralVoice(name, DecoderBatch(info, 1), 0, instrument, synth,
                       interval_semitones=voice.interval_semitones,
                       voicing_threshold=config.analysis.voicing_threshold, part=part)
