"""One voice's synth: harmonic bank + filtered noise (+ optional reverb), DESIGN.md section 5.

Live, the processor renders the voices dry and feeds one shared reverb (engine/mixer.py); the
optional reverb here serves offline tools and tests. Rendering a sub-block and setting a frame's
targets are one compiled call each (both parts inside), so a voice costs two Python-to-kernel
transitions per frame and one per sub-block.
"""

from __future__ import annotations

import numba
import numpy as np

from engine.synth.harmonic import HarmonicBank
from engine.synth.harmonic import _render as _render_harmonics
from engine.synth.harmonic import _retarget as _retarget_harmonics
from engine.synth.noise import FilteredNoise
from engine.synth.noise import _play as _play_noise
from engine.synth.noise import _retarget as _retarget_noise
from engine.synth.noise import _synthesize_frame
from engine.synth.reverb import Reverb


@numba.njit(nogil=True, cache=True)
def _render_voice(out: np.ndarray, offset: int, count: int, harmonic_state: tuple, noise_state: tuple) -> int:
    """Add the harmonics, then the noise, into out[offset:offset + count]; returns how many
    noise samples the current frame held (the caller holds the targets for the rest)."""
    _render_harmonics(out, offset, count, *harmonic_state)
    return _play_noise(out, offset, count, *noise_state)


@numba.njit(nogil=True, cache=True)
def _retarget_voice(
    f0_hz: float, amplitudes: np.ndarray, magnitudes: np.ndarray, harmonic_state: tuple,
    noise_state: tuple, frame_state: tuple,
) -> None:
    """New ramps for the harmonics and the noise bands, and the noise's next frame."""
    _retarget_harmonics(*harmonic_state, f0_hz, amplitudes)
    _retarget_noise(*noise_state, magnitudes)
    _synthesize_frame(*frame_state)


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
        if harmonic_amplitudes.shape != (self.harmonic.n_harmonics,) or noise_magnitudes.shape != (self.noise.n_bands,):
            raise ValueError(
                f"expected {self.harmonic.n_harmonics} amplitudes and {self.noise.n_bands} band magnitudes, "
                f"got shapes {harmonic_amplitudes.shape} and {noise_magnitudes.shape}"
            )
        _retarget_voice(f0_hz, harmonic_amplitudes, noise_magnitudes, self.harmonic.retarget_state,
                        self.noise.retarget_state, self.noise.frame_state)

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        """Add `count` samples into out[offset:offset + count] (float32 or float64, 1-D).

        With reverb on, the reverb then runs in place over that range, so it must hold only
        this voice (the processor gives each voice its own zeroed row).
        """
        done = _render_voice(out, offset, count, self.harmonic.render_state, self.noise.play_state)
        self.noise.render_rest(out, offset, count, done)
        if self.reverb is not None:
            self.reverb.process(out, offset, count)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The harmonic and noise state by name ("harmonic.*", "noise.*"), for a synth bank
        (engine/synth/bank.py); a synth with its own reverb cannot join one."""
        if self.reverb is not None:
            raise ValueError("a synth with its own reverb renders alone: a bank renders dry synths")
        return {**{f"harmonic.{name}": array for name, array in self.harmonic.state_arrays().items()},
                **{f"noise.{name}": array for name, array in self.noise.state_arrays().items()}}

    def adopt_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Keep the state in `arrays` (a bank's views of `state_arrays`)."""
        self.harmonic.adopt_state({name[9:]: array for name, array in arrays.items() if name.startswith("harmonic.")})
        self.noise.adopt_state({name[6:]: array for name, array in arrays.items() if name.startswith("noise.")})

    def reset(self) -> None:
        """Silence the voice and clear every state (phase, noise stream, reverb tail)."""
        self.harmonic.reset()
        self.noise.reset()
        if self.reverb is not None:
            self.reverb.reset()
