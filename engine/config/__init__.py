"""One frozen config for every subcommand: shipped TOML defaults, overlays, then --set."""

from engine.config.schema import (
    AnalysisConfig,
    EchoConfig,
    EngineConfig,
    MixerConfig,
    SynthConfig,
    TuttiConfig,
    VoiceConfig,
)
from engine.config.loading import config_to_dict, config_to_toml, load_config, parse_set_option

__all__ = [
    "AnalysisConfig",
    "EchoConfig",
    "EngineConfig",
    "MixerConfig",
    "SynthConfig",
    "TuttiConfig",
    "VoiceConfig",
    "config_to_dict",
    "config_to_toml",
    "load_config",
    "parse_set_option",
]
