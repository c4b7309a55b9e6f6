"""The config's typed, frozen sections. Field names carry their units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

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
    reverb: bool = True             # one shared reverb, fed by each voice's reverb_send
    reverb_decay_s: float = 1.4

    def __post_init__(self) -> None:
        if not 1 <= self.n_harmonics <= 200:
            raise TuttiError(f"synth.n_harmonics = {self.n_harmonics} must lie in 1..200")
        if not 2 <= self.n_noise_bands <= 256:
            raise TuttiError(f"synth.n_noise_bands = {self.n_noise_bands} must lie in 2..256")
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


VOICE_ROLES = ("", "bass", "counter", "harmony", "drums")  # "" = the leader-interval rule; engine/conductor/contract.py ROLES


@dataclass(frozen=True)
class ConductorConfig:
    model: str = ""                 # "" = the shipped exported_models/conductor.onnx
    midi_out: bool = True           # the followers' notes on a virtual MIDI output port
    midi_out_port: str = ""         # and on the output port whose name contains this


@dataclass(frozen=True)
class VoiceConfig:
    kind: str = "reference:organ"
    interval_semitones: float = 0.0
    gain_db: float = -6.0
    pan: float = 0.0
    mute: bool = False
    solo: bool = False
    reverb_send: float = 0.12       # post-fader send to the shared reverb, 0..1
    role: str = ""                  # "" follows the leader at interval_semitones; else the conductor's role

    def __post_init__(self) -> None:
        if self.role not in VOICE_ROLES:
            raise TuttiError(f"voice role = {self.role!r} is not a role: use one of {', '.join(repr(r) for r in VOICE_ROLES)}")
        if not 0.0 <= self.reverb_send <= 1.0:
            raise TuttiError(f"voice reverb_send = {self.reverb_send} must lie in 0..1")
        if not -1.0 <= self.pan <= 1.0:
            raise TuttiError(f"voice pan = {self.pan} must lie in -1 (left)..1 (right)")
        if not -48.0 <= self.interval_semitones <= 48.0:
            raise TuttiError(
                f"voice interval_semitones = {self.interval_semitones} must lie in -48..48"
            )


@dataclass(frozen=True)
class EchoConfig:
    enabled: bool = True            # off for headphones (live --headphones) and file inputs
    bulk_delay_samples: int = 0     # the round trip; 0: nothing to cancel (offline default)
    taps: int = 512                 # room model length after the bulk delay
    step: float = 0.5
    calibration_s: float = 1.0      # a quiet noise burst at the start teaches it the room
    calibration_db: float = -30.0

    def __post_init__(self) -> None:
        if self.bulk_delay_samples < 0 or not 16 <= self.taps <= 8192:
            raise TuttiError(
                f"echo.bulk_delay_samples = {self.bulk_delay_samples} and echo.taps = {self.taps} "
                "must be >= 0 and in 16..8192"
            )
        if not 0.0 < self.step < 2.0:
            raise TuttiError(f"echo.step = {self.step} must lie in (0, 2)")
        if not 0.0 <= self.calibration_s <= 10.0 or not -60.0 <= self.calibration_db <= -6.0:
            raise TuttiError(
                f"echo.calibration_s = {self.calibration_s} and echo.calibration_db = "
                f"{self.calibration_db} must lie in 0..10 s and -60..-6 dBFS"
            )

    @property
    def active(self) -> bool:
        return self.enabled and self.bulk_delay_samples > 0


KINDS = ("cc", "note")
Control = tuple[str, str, int, int]  # (port, kind, channel, number)


@dataclass(frozen=True)
class MidiBinding:
    """One control (a CC or a note on a channel of a port) bound to a parameter name."""

    port: str
    kind: str  # "cc" or "note"
    channel: int  # 0-15
    number: int  # controller or note number 0-127
    parameter: str  # a LiveParameters name, or PANIC

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TuttiError(f"MIDI binding kind '{self.kind}' is unknown: use 'cc' or 'note'")
        if not 0 <= self.channel <= 15:
            raise TuttiError(f"MIDI binding channel {self.channel} is out of range: use 0-15")
        if not 0 <= self.number <= 127:
            raise TuttiError(f"MIDI binding number {self.number} is out of range: use 0-127")

    @property
    def control(self) -> Control:
        return (self.port, self.kind, self.channel, self.number)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MidiBinding:
        """Read a binding from a config or session table, naming what is wrong if it is."""
        try:
            return cls(
                port=str(data["port"]), kind=str(data["kind"]), channel=int(data["channel"]),
                number=int(data["number"]), parameter=str(data["parameter"]),
            )
        except KeyError as exc:
            raise TuttiError(
                f"MIDI binding {dict(data)} lacks {exc}: give port, kind, channel, number and parameter"
            ) from None
        except (TypeError, ValueError):
            raise TuttiError(
                f"MIDI binding {dict(data)} is malformed: channel and number must be integers"
            ) from None


@dataclass(frozen=True)
class MidiConfig:
    port: str = ""              # open the input port whose name contains this ("" = none)
    virtual_port: bool = True   # also offer a virtual input other apps can connect to
    bindings: tuple[MidiBinding, ...] = ()


@dataclass(frozen=True)
class TuttiConfig:
    engine: EngineConfig = field(default_factory=EngineConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    mixer: MixerConfig = field(default_factory=MixerConfig)
    midi: MidiConfig = field(default_factory=MidiConfig)
    conductor: ConductorConfig = field(default_factory=ConductorConfig)
    echo: EchoConfig = field(default_factory=EchoConfig)
    voices: tuple[tuple[str, VoiceConfig], ...] = ()

    @property
    def voice_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.voices)
