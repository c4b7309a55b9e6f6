"""The config's typed, frozen sections. Field names carry their units."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import TuttiError
from engine.rates import ENGINE_SAMPLE_RATES_HZ, check_block_samples


@dataclass(frozen=True)
class EngineConfig:
    sample_rate_hz: int = 48000
    block_samples: int = 128

    def __post_init__(self) -> None:
        if self.sample_rate_hz not in ENGINE_SAMPLE_RATES_HZ:
            raise TuttiError(
                f"engine.sample_rate_hz = {self.sample_rate_hz} is not supported: use 48000 or 96000"
            )
        check_block_samples(self.block_samples)


@dataclass(frozen=True)
class AnalysisConfig:
    f0_min_hz: float = 50.0
    f0_max_hz: float = 2000.0
    voicing_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 20.0 <= self.f0_min_hz < self.f0_max_hz <= 4000.0:
            raise TuttiError(
                f"analysis.f0_min_hz = {self.f0_min_hz} and f0_max_hz = {self.f0_max_hz} must satisfy "
                "20 <= f0_min_hz < f0_max_hz <= 4000"
            )


@dataclass(frozen=True)
class SynthConfig:
    n_harmonics: int = 60
    n_noise_bands: int = 65
    reverb: bool = True
    reverb_decay_s: float = 1.4
    reverb_wet: float = 0.12

    def __post_init__(self) -> None:
        if not 1 <= self.n_harmonics <= 200:
            raise TuttiError(f"synth.n_harmonics = {self.n_harmonics} must lie in 1..200")
        if not 2 <= self.n_noise_bands <= 256:
            raise TuttiError(f"synth.n_noise_bands = {self.n_noise_bands} must lie in 2..256")
        if not 0.0 <= self.reverb_wet <= 1.0:
            raise TuttiError(f"synth.reverb_wet = {self.reverb_wet} must lie in 0..1")
        if not 0.05 <= self.reverb_decay_s <= 20.0:
            raise TuttiError(f"synth.reverb_decay_s = {self.reverb_decay_s} must lie in 0.05..20")


@dataclass(frozen=True)
class MixerConfig:
    master_gain_db: float = -3.0
    input_monitor_db: float = -120.0
    limiter_ceiling_db: float = -1.0

    def __post_init__(self) -> None:
        if not -40.0 <= self.limiter_ceiling_db <= 0.0:
            raise TuttiError(
                f"mixer.limiter_ceiling_db = {self.limiter_ceiling_db} must lie in -40..0 dBFS"
            )


@dataclass(frozen=True)
class VoiceConfig:
    kind: str = "reference:organ"
    interval_semitones: float = 0.0
    gain_db: float = -6.0
    pan: float = 0.0
    mute: bool = False
    solo: bool = False

    def __post_init__(self) -> None:
        if not -1.0 <= self.pan <= 1.0:
            raise TuttiError(f"voice pan = {self.pan} must lie in -1 (left)..1 (right)")
        if not -48.0 <= self.interval_semitones <= 48.0:
            raise TuttiError(
                f"voice interval_semitones = {self.interval_semitones} must lie in -48..48"
            )


@dataclass(frozen=True)
class TuttiConfig:
    engine: EngineConfig = field(default_factory=EngineConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    mixer: MixerConfig = field(default_factory=MixerConfig)
    voices: tuple[tuple[str, VoiceConfig], ...] = ()

    @property
    def voice_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.voices)
