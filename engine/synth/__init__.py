"""The numba synthesis core: per-frame controls in, phase-continuous audio out, any block size.

`VoiceSynth` composes `HarmonicBank`, `FilteredNoise` and an optional `Reverb`; all render into
preallocated buffers without allocating after construction (DESIGN.md section 5).
"""

from engine.synth.harmonic import HarmonicBank, harmonic_reference
from engine.synth.noise import FilteredNoise, band_response
from engine.synth.reverb import Reverb
from engine.synth.voice_synth import VoiceSynth

__all__ = [
    "FilteredNoise",
    "HarmonicBank",
    "Reverb",
    "VoiceSynth",
    "band_response",
    "harmonic_reference",
]
