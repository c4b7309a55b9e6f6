"""Decoder and training sizes. The shipped defaults run six voices live on one core
(DESIGN.md section 11: GRU 256 + MLP 1x256 costs 0.068 ms per ORT step); `RESEARCH` is the
3-layer GRU 512 of the original design, still trainable as an overlay."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from engine.errors import TuttiError
from engine.rates import TRAINING_SAMPLE_RATES_HZ


@dataclass(frozen=True)
class DecoderConfig:
    """Network and synth sizes; `instruments` names the embedding rows (one row: one voice)."""

    sample_rate_hz: int = 16000
    n_harmonics: int = 60
    n_noise_bands: int = 65
    mlp_units: int = 256
    mlp_layers: int = 1
    gru_units: int = 256
    gru_layers: int = 1
    embedding_dim: int = 16
    instruments: tuple[str, ...] = ("voice",)

    def __post_init__(self) -> None:
        if self.sample_rate_hz not in TRAINING_SAMPLE_RATES_HZ:
            raise TuttiError(
                f"decoder sample_rate_hz = {self.sample_rate_hz}: train at 16000 or 24000 Hz"
            )
        for name in ("n_harmonics", "n_noise_bands", "mlp_units", "mlp_layers", "gru_units", "gru_layers"):
            if getattr(self, name) < 1 + (name == "n_noise_bands"):
                raise TuttiError(f"decoder {name} = {getattr(self, name)} is too small")
        if not self.instruments or len(set(self.instruments)) != len(self.instruments):
            raise TuttiError(f"decoder instruments {self.instruments!r}: give distinct names")

    @property
    def nyquist_hz(self) -> float:
        return self.sample_rate_hz / 2.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: DDSP's Adam schedule lr * decay_rate ** (step / decay_steps), grad clip 3."""

    batch_size: int = 8
    window_s: float = 1.0
    max_steps: int = 3000
    learning_rate: float = 1e-3
    decay_steps: int = 1000
    decay_rate: float = 0.9
    grad_clip_norm: float = 3.0
    val_every_steps: int = 100
    val_windows: int = 32
    patience: int = 8  # validations without improvement before stopping early
    checkpoint_every_s: float = 180.0
    checkpoint_every_steps: int = 0  # 0: by time only
    seed: int = 0
    fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64)
    max_minutes: float = 0.0  # 0: no wall-clock limit

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.window_s <= 0 or self.max_steps < 1:
            raise TuttiError("train batch_size, window_s and max_steps must be positive")


@dataclass(frozen=True)
class VoiceRunConfig:
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VoiceRunConfig:
        decoder = dict(data.get("decoder", {}))
        if "instruments" in decoder:
            decoder["instruments"] = tuple(decoder["instruments"])
        train = dict(data.get("train", {}))
        if "fft_sizes" in train:
            train["fft_sizes"] = tuple(train["fft_sizes"])
        try:
            return cls(DecoderConfig(**decoder), TrainConfig(**train))
        except TypeError as err:
            raise TuttiError(f"voice config: {err}: use the fields of training/voice/config.py") from None


OVERLAYS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {},
    # The original design's size: 1.57 ms per ORT step, too slow for six live voices.
    "research": {"decoder": {"gru_units": 512, "gru_layers": 3, "mlp_units": 512, "mlp_layers": 3, "n_harmonics": 100}},
    # A few minutes on one core: for tests and quick checks.
    "smoke": {"decoder": {"gru_units": 64, "mlp_units": 64, "n_harmonics": 32, "n_noise_bands": 33},
              "train": {"max_steps": 200, "val_every_steps": 50, "val_windows": 8}},
}


def apply_overrides(config: VoiceRunConfig, overrides: dict[str, dict[str, Any]]) -> VoiceRunConfig:
    """`config` with `{"decoder": {...}, "train": {...}}` values replaced (unknown keys refused)."""
    data = config.to_dict()
    for section, values in overrides.items():
        if section not in data:
            raise TuttiError(f"voice config has no section {section!r}: use decoder or train")
        for key, value in values.items():
            if key not in data[section]:
                raise TuttiError(f"voice config has no field {section}.{key}")
            data[section][key] = value
    return VoiceRunConfig.from_dict(data)


def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    """`["decoder.gru_units=128", ...]` -> overrides; values parsed as int, float or text."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise TuttiError(f"--voice-set {item!r}: write SECTION.KEY=VALUE, e.g. decoder.gru_units=128")
        value: Any = text
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                continue
        overrides.setdefault(section, {})[name] = value
    return overrides
