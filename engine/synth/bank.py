"""A bank of dry synths rendered in one compiled call per sub-block and retargeted in place.

The processor renders every synth of every batched voice through one bank (one per synth
size): each synth's state moves into stacked arrays (engine/synth/stacking.py) and the synth
keeps views of it, so it still renders, retargets and resets alone (a voice in a crossfade
does) and the bank sees the same state. Synth s adds into row `rows[s]` of a 2-D output (the
processor's voice rows) while `active[s]` is set; the audio is the same, sample for sample, as
each synth's own `render` (same kernels, same order within a row).
"""

from __future__ import annotations

import numba
import numpy as np

from engine.synth.harmonic import _render as _render_harmonics
from engine.synth.harmonic import _retarget as _retarget_harmonics
from engine.synth.noise import FilteredNoise, _synthesize_frame
from engine.synth.noise import _play as _play_noise
from engine.synth.noise import _retarget as _retarget_noise
from engine.synth.stacking import first_rows, gather
from engine.synth.voice_synth import VoiceSynth

_SCRATCH_SHAPE = (6, 64)  # the harmonic kernel's chunk scratch (engine/synth/harmonic.py)


@numba.njit(nogil=True, cache=True)
def _render_bank(
    out: np.ndarray, rows: np.ndarray, active: np.ndarray, offset: int, count: int,
    h_values: np.ndarray, h_counter: np.ndarray, phase: np.ndarray, scratch: np.ndarray,
    frame_samples: int, radians_per_hz: float, max_partial_hz: np.ndarray,
    n_frame: np.ndarray, n_counter: np.ndarray, cursor: np.ndarray, played: np.ndarray,
) -> int:
    """Every active synth adds out[rows[s], offset:offset + count]; returns how many synths
    ran out of their noise frame (played[s] < count: the caller holds their targets)."""
    short = 0
    for s in range(rows.shape[0]):
        played[s] = count
        if active[s]:
            row = out[rows[s]]
            _render_harmonics(row, offset, count, h_values[s], h_counter[s], phase[s], scratch,
                              frame_samples, radians_per_hz, max_partial_hz[s])
            played[s] = _play_noise(row, offset, count, n_frame[s], n_counter[s], cursor[s], frame_samples)
            if played[s] < count:
                short += 1
    return short


@numba.njit(nogil=True, cache=True)
def retarget_synth(
    s: int, f0_hz: float, amplitudes: np.ndarray, magnitudes: np.ndarray, frame_samples: int,
    h_values: np.ndarray, h_counter: np.ndarray, n_values: np.ndarray, n_counter: np.ndarray,
    rng: np.ndarray, cursor: np.ndarray, ring: np.ndarray, work: np.ndarray, spectra: np.ndarray,
    low: np.ndarray, n_frame: np.ndarray, band_spectra: np.ndarray, first_bin: np.ndarray,
    phases: np.ndarray, twiddles: np.ndarray, bitrev: np.ndarray, bitrev_half: np.ndarray,
) -> None:
    """`VoiceSynth.set_targets` of bank synth s, from inside a group's kernel (the arguments
    after `magnitudes` are a bank's `retarget_state`)."""
    _retarget_harmonics(h_values[s], h_counter[s], frame_samples, f0_hz, amplitudes)
    _retarget_noise(n_values[s], n_counter[s], frame_samples, magnitudes)
    _synthesize_frame(n_values[s], frame_samples, rng[s], cursor[s], ring[s], work[s], spectra[s],
                      band_spectra, first_bin, low[s], n_frame[s], phases, twiddles, bitrev, bitrev_half)


class SynthBank:
    """Dry synths of one size (harmonics, bands, frame, rate, training Nyquist) in one bank.

    `rows[s]` is the output row synth s renders into and `active[s]` whether it plays through
    the bank now (the owner sets both; an inactive synth is left to render alone).
    """

    def __init__(self, synths: list[VoiceSynth], rows: list[int]) -> None:
        if not synths:
            raise ValueError("a synth bank needs at least one synth")
        self.synths = synths
        self.rows = np.array(rows, dtype=np.int64)
        self.active = np.zeros(len(synths), dtype=np.int64)
        self._played = np.zeros(len(synths), dtype=np.int64)
        states = [synth.state_arrays() for synth in synths]
        stacked, views = gather(states)
        for synth, view in zip(synths, views):
            synth.adopt_state(view)
        tables = first_rows(states, tuple(f"noise.{name}" for name in FilteredNoise.TABLE_FIELDS))
        first = synths[0]
        frame_samples = first.frame_samples
        self.render_state = (
            stacked["harmonic.values"], stacked["harmonic.counter"], stacked["harmonic.phase"],
            np.zeros(_SCRATCH_SHAPE), frame_samples, first.harmonic.render_state[5],
            np.array([synth.harmonic.max_partial_hz for synth in synths]),
            stacked["noise.frame"], stacked["noise.counter"], stacked["noise.cursor"], self._played,
        )
        self.retarget_state = (
            frame_samples, stacked["harmonic.values"], stacked["harmonic.counter"],
            *(stacked[f"noise.{name}"] for name in FilteredNoise.STATE_FIELDS),
            *(tables[f"noise.{name}"] for name in FilteredNoise.TABLE_FIELDS),
        )

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        """Every active synth adds count samples into out[rows[s], offset:offset + count]."""
        if _render_bank(out, self.rows, self.active, offset, count, *self.render_state):
            for s, synth in enumerate(self.synths):  # past a frame without new targets: hold them
                if self.active[s] and self._played[s] < count:
                    synth.noise.render_rest(out[self.rows[s]], offset, count, int(self._played[s]))
