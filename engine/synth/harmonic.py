"""Additive bank of integer harmonics with one phase carried across blocks (DESIGN.md section 5).

Partial h (1-based) has phase h * theta, where theta is the single accumulated fundamental
phase (as DDSP does), so partials stay phase-locked through glides, block edges and frame
edges; theta is never reset except by `reset()`. Per sample the bank interpolates f0 and the
amplitudes (the linear ramp contract of engine/synth/ramp.py), advances theta by
2*pi*f0/sample_rate and adds sum_h a_h * sin(h * theta), with every partial at or above
`max_partial_hz` zeroed. sin(h*theta) comes from the Chebyshev recurrence
sin((h+1)t) = 2 cos(t) sin(ht) - sin((h-1)t), in float64: one sin and one cos per sample.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from engine.synth.ramp import (
    CHANGE,
    START,
    ControlRamp,
    ramp_advance,
    ramp_current,
    ramp_glide,
    ramp_retarget,
    ramp_weight,
)

_CHUNK = 64  # samples per inner pass; the scratch rows hold one chunk
_WEIGHT, _SIN_PREV, _SIN, _TWO_COS, _SUM, _PARTIALS = range(6)
_TWO_PI = 2.0 * math.pi
_F0 = 0  # ramp slot of f0; harmonic h sits in slot h


@numba.njit(nogil=True, cache=True, inline="always")
def audible_partials(f0_hz: float, max_partial_hz: float, n_harmonics: int) -> int:
    """How many partials h = 1, 2, ... satisfy h * f0 < max_partial_hz (0 when f0 <= 0)."""
    if f0_hz <= 0.0:
        return 0
    ratio = max_partial_hz / f0_hz
    if ratio > n_harmonics:
        return n_harmonics
    count = int(ratio)
    if count * f0_hz >= max_partial_hz:  # h * f0 exactly at the limit is zeroed
        count -= 1
    return count


@numba.njit(nogil=True, cache=True)
def _retarget(
    values: np.ndarray,
    counter: np.ndarray,
    frame_samples: int,
    f0_hz: float,
    amplitudes: np.ndarray,
) -> None:
    """Start new ramps; an unvoiced target (f0 <= 0) fades out at the current pitch, and a
    silent bank starts its f0 at the target instead of gliding up from the last pitch."""
    c = counter[0]
    n_harmonics = amplitudes.shape[0]
    silent = True
    for h in range(1, n_harmonics + 1):
        if ramp_current(values, c, frame_samples, h) != 0.0:
            silent = False
            break
    f0_now = ramp_current(values, c, frame_samples, _F0)
    voiced = f0_hz > 0.0
    f0_target = f0_hz if voiced else f0_now
    f0_start = f0_target if silent or f0_now <= 0.0 else f0_now
    ramp_retarget(values, c, frame_samples, _F0, f0_start, f0_target)
    for h in range(1, n_harmonics + 1):
        ramp_glide(values, c, frame_samples, h, amplitudes[h - 1] if voiced else 0.0)
    counter[0] = 0


@numba.njit(nogil=True, cache=True)
def _render(
    out: np.ndarray,
    offset: int,
    count: int,
    values: np.ndarray,
    counter: np.ndarray,
    phase: np.ndarray,
    scratch: np.ndarray,
    frame_samples: int,
    radians_per_hz: float,
    max_partial_hz: float,
) -> None:
    """Add `count` samples of the bank into out[offset:offset + count]."""
    n_harmonics = values.shape[1] - 1
    weight = scratch[_WEIGHT]
    sin_prev = scratch[_SIN_PREV]
    sin_cur = scratch[_SIN]
    two_cos = scratch[_TWO_COS]
    total = scratch[_SUM]
    partials = scratch[_PARTIALS]
    c = counter[0]
    theta = phase[0]
    f0_start = values[START, _F0]
    f0_change = values[CHANGE, _F0]
    done = 0
    while done < count:
        n = min(_CHUNK, count - done)
        most = 0
        for i in range(n):
            w = ramp_weight(c, frame_samples)
            c = ramp_advance(c, 1, frame_samples)
            f0 = f0_start + f0_change * w
            k = audible_partials(f0, max_partial_hz, n_harmonics)
            if f0 > 0.0:
                theta += radians_per_hz * f0
                if theta >= _TWO_PI:
                    theta -= _TWO_PI * math.floor(theta / _TWO_PI)
            weight[i] = w
            partials[i] = k
            most = max(most, k)
            sin_prev[i] = 0.0
            sin_cur[i] = math.sin(theta)
            two_cos[i] = 2.0 * math.cos(theta)
            total[i] = 0.0
        for h in range(1, most + 1):
            a_start = values[START, h]
            a_change = values[CHANGE, h]
            for i in range(n):
                s = sin_cur[i]
                gate = 1.0 if h <= partials[i] else 0.0
                total[i] += gate * (a_start + a_change * weight[i]) * s
                sin_cur[i] = two_cos[i] * s - sin_prev[i]
                sin_prev[i] = s
        for i in range(n):
            out[offset + done + i] += total[i]
        done += n
    counter[0] = c
    phase[0] = theta


class HarmonicBank:
    """Integer harmonics of one f0, phase-continuous, rendered in blocks of any size.

    `max_partial_hz` is the lower of the model's training Nyquist and the engine's Nyquist;
    the bank also never goes above its own sample_rate_hz / 2.
    """

    def __init__(
        self, sample_rate_hz: int, n_harmonics: int, frame_samples: int, max_partial_hz: float
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.n_harmonics = n_harmonics
        self.frame_samples = frame_samples
        self.max_partial_hz = min(float(max_partial_hz), sample_rate_hz / 2.0)
        self._ramp = ControlRamp(n_harmonics + 1, frame_samples)
        self._phase = np.zeros(1)
        self._scratch = np.zeros((6, _CHUNK))
        self._radians_per_hz = _TWO_PI / sample_rate_hz
        self._kernel_states()

    def set_targets(self, f0_hz: float, amplitudes: np.ndarray) -> None:
        """New targets for the next frame: f0 in Hz (<= 0: unvoiced, fade to silence) and the
        linear peak amplitude of each harmonic (float64[n_harmonics])."""
        if amplitudes.shape != (self.n_harmonics,):
            raise ValueError(
                f"expected {self.n_harmonics} amplitudes, got shape {amplitudes.shape}"
            )
        _retarget(self._ramp.values, self._ramp.counter, self.frame_samples, f0_hz, amplitudes)

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        """Add `count` samples into out[offset:offset + count] (float32 or float64, 1-D)."""
        _render(out, offset, count, *self.render_state)

    def _kernel_states(self) -> None:
        """The arguments `_render` takes after (out, offset, count) and `_retarget` before
        (f0_hz, amplitudes), bound once: a voice's synth renders and retargets its parts in
        one compiled call each (engine/synth/voice_synth.py)."""
        self.render_state = (self._ramp.values, self._ramp.counter, self._phase, self._scratch,
                             self.frame_samples, self._radians_per_hz, self.max_partial_hz)
        self.retarget_state = (self._ramp.values, self._ramp.counter, self.frame_samples)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The bank's mutable state by name (engine/synth/stacking.py); the scratch is not
        state (every chunk rewrites it before reading it)."""
        return {"values": self._ramp.values, "counter": self._ramp.counter, "phase": self._phase}

    def adopt_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Keep the state in `arrays` (views a synth bank made from `state_arrays`)."""
        self._ramp.values, self._ramp.counter, self._phase = arrays["values"], arrays["counter"], arrays["phase"]
        self._kernel_states()

    def reset(self) -> None:
        """Silence, f0 0 and phase 0."""
        self._ramp.reset()
        self._phase[0] = 0.0


def harmonic_reference(
    f0_per_sample: np.ndarray,
    amps_per_sample: np.ndarray,
    sample_rate_hz: int,
    max_partial_hz: float,
) -> np.ndarray:
    """Plain numpy float64 specification of the bank for given per-sample controls.

    f0_per_sample: float[n] in Hz; amps_per_sample: float[n, n_harmonics] linear peak
    amplitudes. theta[n] = sum over samples up to n of 2*pi*max(f0, 0)/sample_rate; output
    sum_h a_h[n] sin(h theta[n]) over partials with h*f0[n] < min(max_partial_hz, sr/2), f0 > 0.
    """
    f0 = np.asarray(f0_per_sample, dtype=np.float64)
    amps = np.asarray(amps_per_sample, dtype=np.float64)
    limit = min(float(max_partial_hz), sample_rate_hz / 2.0)
    theta = np.cumsum(2.0 * np.pi * np.maximum(f0, 0.0) / sample_rate_hz)
    h = np.arange(1, amps.shape[1] + 1)
    audible = (h[None, :] * f0[:, None] < limit) & (f0[:, None] > 0.0)
    return np.sum(np.where(audible, amps * np.sin(h[None, :] * theta[:, None]), 0.0), axis=1)
