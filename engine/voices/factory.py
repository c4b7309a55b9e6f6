"""Build the configured voices."""

from __future__ import annotations

import dataclasses
import zlib

from engine.config import TuttiConfig, VoiceConfig
from engine.errors import TuttiError
from engine.rates import CONTROL_RATE_HZ, frame_samples
from engine.synth.voice_synth import VoiceSynth
from engine.voices.base import Voice
from engine.voices.test_kinds import (
    FAULT_PREFIX,
    PLAYS_LIKE,
    TASK_TRANSPOSED_KIND,
    RaisingVoice,
    TaskTransposedVoice,
    frames_before_fault,
)
from engine.voices.neural import MODEL_PREFIX, build_model_voice
from engine.voices.reference import TIMBRES, ReferenceVoice


def build_voice(name: str, voice: VoiceConfig, config: TuttiConfig) -> Voice:
    """One voice, compiled and ready to render (call it off the audio thread)."""
    if voice.kind.startswith(MODEL_PREFIX):
        return build_model_voice(name, voice, config)
    if voice.kind.startswith(FAULT_PREFIX):
        try:
            after_frames = frames_before_fault(voice.kind)
        except ValueError as err:
            raise TuttiError(f"voices.{name}.kind: {err}") from None
        return RaisingVoice(build_voice(name, dataclasses.replace(voice, kind=PLAYS_LIKE), config), after_frames)
    if voice.kind == TASK_TRANSPOSED_KIND:
        plain = build_voice(name, dataclasses.replace(voice, kind=PLAYS_LIKE), config)
        return TaskTransposedVoice(plain, voice.interval_semitones)
    if voice.kind not in TIMBRES:
        raise TuttiError(
            f"voices.{name}.kind = {voice.kind!r} is unknown: use one of {', '.join(TIMBRES)} or model:NAME"
        )
    sample_rate_hz = config.engine.sample_rate_hz
    synth = VoiceSynth(
        sample_rate_hz,
        frame_samples(sample_rate_hz),
        config.synth.n_harmonics,
        config.synth.n_noise_bands,
        model_nyquist_hz=sample_rate_hz / 2,
        seed=zlib.crc32(name.encode()),  # dry: the processor's shared reverb takes a send
    )
    return ReferenceVoice(
        name, voice.kind, voice.interval_semitones, synth,
        n_harmonics=config.synth.n_harmonics,
        n_noise_bands=config.synth.n_noise_bands,
        frame_s=1.0 / CONTROL_RATE_HZ,
        voicing_threshold=config.analysis.voicing_threshold,
    )


def build_voices(config: TuttiConfig) -> list[Voice]:
    """One voice per [voices.NAME] table, in config order."""
    return [build_voice(name, voice, config) for name, voice in config.voices]
