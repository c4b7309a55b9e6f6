"""The reference ensemble for tests: the three built-in timbres (bass, organ, strings at -12, -5
and +4 semitones) that need no model, as the engine played by default before trained voices."""

from __future__ import annotations

from pathlib import Path

from engine.config import TuttiConfig, load_config

REFERENCE_VOICES = Path(__file__).with_name("reference_voices.toml")


def reference_config(sets: list[str] | tuple[str, ...] = ()) -> TuttiConfig:
    """The shipped config with the reference ensemble, then `sets` (--set options)."""
    return load_config(overlays=[REFERENCE_VOICES], sets=sets)
