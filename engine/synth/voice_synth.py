"""One voice's synth: harmonic bank + filtered noise (+ optional reverb), DESIGN.md section 5."""

from __future__ import annotations

import numpy as np

from engine.synth.harmonic import HarmonicBank
from engine.synth.noise import FilteredNoise
from engine.synth.reverb import Reverb


class VoiceSynth:
    """Turns per-frame decoder controls into one voice's audio, in blocks of any size.

    The harmonic partials and the noise bands are both masked at min(model_nyquist_hz,
    sample_rate_hz / 2): a model never plays above what it heard in training. Call
    `set_targets` at each control-frame boundary, then `render` the frame's samples in any
    number of calls (engine/synth/ramp.py states the timing contract).
    """

    def __init__(
        self,
        sample_rate_hz: int,
        frame_samples: int,
        n_harmonics: int,
        n_noise_bands: int,
        model_nyquist_hz: float,
        reverb: bool = False,
        seed: int = 0,
        *,
        reverb_decay_s: float = 1.5,
        reverb_wet: float = 0.2,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.frame_samples = frame_samples
        self.max_partial_hz = min(float(model_nyquist_hz), sample_rate_hz / 2.0)
        self.harmonic = HarmonicBank(
            sample_rate_hz, n_harmonics, frame_samples, self.max_partial_hz
        )
        self.noise = FilteredNoise(
            sample_rate_hz, frame_samples, n_noise_bands, model_nyquist_hz, seed
        )
        self.reverb = (
            Reverb(sample_rate_hz, reverb_decay_s, reverb_wet, seed + 1) if reverb else None
        )

    def set_targets(
        self, f0_hz: float, harmonic_amplitudes: np.ndarray, noise_magnitudes: np.ndarray
    ) -> None:
        """Targets for the next frame: f0 in Hz (<= 0: unvoiced), float64[n_harmonics] linear
        peak amplitudes, float64[n_noise_bands] band magnitudes (engine/synth/noise.py)."""
        self.harmonic.set_targets(f0_hz, harmonic_amplitudes)
        self.noise.set_targets(noise_magnitudes)

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        """Add `count` samples into out[offset:offset + count] (float32 or float64, 1-D).

        With reverb on, the reverb then runs in place over that range, so it must hold only
        this voice (the processor gives each voice its own zeroed row).
        """
        self.harmonic.render(out, offset, count)
        self.noise.render(out, offset, count)
        if self.reverb is not None:
            self.reverb.process(out, offset, count)

    def reset(self) -> None:
        """Silence the voice and clear every state (phase, noise stream, reverb tail)."""
        self.harmonic.reset()
        self.noise.reset()
        if self.reverb is not None:
            self.reverb.reset()
