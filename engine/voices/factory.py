"""Build the configured voices."""

from __future__ import annotations

import dataclasses
import zlib

from engine.config import TuttiConfig, VoiceConfig
from engine.errors import TuttiError
from engine.rates import CONTROL_RATE_HZ, frame_samples
from engine.synth.voice_synth import VoiceSynth
from engine.conductor.task import role_part
from engine.parts import MAX_NOTES, LeaderIntervalPart, PlanPart
from engine.voices.base import Voice
from engine.voices.part_voice import PartVoice
from engine.voices.test_kinds import (
    FAULT_PREFIX,
    PLAYS_LIKE,
    TASK_PLAN_KIND,
    PlanTestTask,
    RaisingVoice,
    frames_before_fault,
)
from engine.voices.neural import MODEL_PREFIX, build_model_voice
from engine.voices.reference import TIMBRES, ReferenceInstrument


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
    if voice.kind == TASK_PLAN_KIND:
        part = PlanPart(PlanTestTask.name, PlanTestTask.horizon_frames)
        return PartVoice(name, part, reference_instrument(name, PLAYS_LIKE, config))
    if voice.kind not in TIMBRES:
        raise TuttiError(
            f"voices.{name}.kind = {voice.kind!r} is unknown: use one of {', '.join(TIMBRES)} or model:NAME"
        )
    if voice.role:
        slots = MAX_NOTES if voice.role == "harmony" else 1
        return PartVoice(name, role_part(voice.role), reference_instrument(name, voice.kind, config, slots))
    part = LeaderIntervalPart(voice.interval_semitones, config.analysis.voicing_threshold)
    return PartVoice(name, part, reference_instrument(name, voice.kind, config))


def reference_instrument(name: str, kind: str, config: TuttiConfig, slots: int = 1) -> ReferenceInstrument:
    """A built-in timbre with `slots` dry synths (one per note it can play at once)."""
    sample_rate_hz = config.engine.sample_rate_hz
    synths = [
        VoiceSynth(
            sample_rate_hz,
            frame_samples(sample_rate_hz),
            config.synth.n_harmonics,
            config.synth.n_noise_bands,
            model_nyquist_hz=sample_rate_hz / 2,
            seed=zlib.crc32(name.encode()) + slot,  # dry: the processor's shared reverb takes a send
        )
        for slot in range(slots)
    ]
    return ReferenceInstrument(
        kind, synths, n_harmonics=config.synth.n_harmonics, n_noise_bands=config.synth.n_noise_bands,
        frame_s=1.0 / CONTROL_RATE_HZ,
    )


def part_label(voice: VoiceConfig) -> str:
    """What a voice plays, in words, for session.json: its part source, then its kind."""
    if voice.role:
        source = f"conductor role {voice.role}"
    elif voice.kind == TASK_PLAN_KIND:
        source = "test task plan"
    else:
        source = f"leader-interval rule, {voice.interval_semitones:+g} semitones"
    return f"{source}; played by {voice.kind}"


def part_labels(config: TuttiConfig) -> dict[str, str]:
    """`part_label` of every configured voice, by name."""
    return {name: part_label(voice) for name, voice in config.voices}


def build_voices(config: TuttiConfig) -> list[Voice]:
    """One voice per [voices.NAME] table, in config order."""
    return [build_voice(name, voice, config) for name, voice in config.voices]
