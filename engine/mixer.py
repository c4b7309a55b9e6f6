"""Mixer maths for the audio thread: per-voice gain/pan/mute/solo, a post-fader send per voice
to one shared reverb, input monitor, master gain, a NaN/Inf guard per voice and a peak
limiter on the mix (`sum_voices`, then the reverb on the send bus, then `finish_mix`).

Other threads publish parameters by writing plain floats into `MixerParams.voices` and
`MixerParams.master` (last write wins); the kernel slews every gain toward its target at a
bounded rate, so a fader jump never clicks, and reaches it exactly (10 ms for a full-scale step).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from engine.synth.reverb import _process as _reverb_process

GAIN, PAN, MUTE, SOLO = 0, 1, 2, 3
MASTER_GAIN, INPUT_MONITOR = 0, 1
FULL_SCALE_SLEW_S = 0.010
LIMITER_RELEASE_S = 0.080
FAULT_ABS_LIMIT = 1.0e4  # a voice sample beyond this counts as a blast, like NaN/Inf


def db_to_gain(db: float) -> float:
    """Decibels to a linear gain; -120 dB and below is silence."""
    return 0.0 if db <= -120.0 else 10.0 ** (db / 20.0)


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan law: pan -1 is hard left, 0 is -3 dB on each side, 1 is hard right."""
    angle = (pan + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


class MixerParams:
    """Published mixer parameters: plain float arrays written by any thread (or, in shared
    memory, any process), read per block. `voices` [n, 4] GAIN/PAN/MUTE/SOLO, `master` [2]."""

    def __init__(self, n_voices: int, voices: np.ndarray | None = None, master: np.ndarray | None = None) -> None:
        self.voices = np.zeros((n_voices, 4)) if voices is None else voices
        self.master = np.zeros(2) if master is None else master
        self.voices[:, GAIN] = 1.0
        self.master[:] = (1.0, 0.0)


@numba.njit(nogil=True, cache=True)
def latch_parameters(
    published_voices: np.ndarray,
    published_master: np.ndarray,
    used_voices: np.ndarray,
    used_master: np.ndarray,
    changes: np.ndarray,
) -> int:
    """Copy the published parameters into the ones this block uses; returns how many changed,
    listed in changes[:n] as (row, column, value), row -1 for the master. Other threads (or
    processes) may write the published arrays at any moment: a block sees one consistent
    snapshot, and every change is taken at a known sample (the automation log)."""
    n = 0
    for v in range(published_voices.shape[0]):
        for c in range(published_voices.shape[1]):
            x = published_voices[v, c]
            if x != used_voices[v, c]:
                used_voices[v, c] = x
                if n < changes.shape[0]:
                    changes[n, 0], changes[n, 1], changes[n, 2] = v, c, x
                    n += 1
    for c in range(published_master.shape[0]):
        x = published_master[c]
        if x != used_master[c]:
            used_master[c] = x
            if n < changes.shape[0]:
                changes[n, 0], changes[n, 1], changes[n, 2] = -1, c, x
                n += 1
    return n


@numba.njit(nogil=True, cache=True)
def _slew(current: float, target: float, max_step: float) -> float:
    delta = target - current
    if delta > max_step:
        return current + max_step
    if delta < -max_step:
        return current - max_step
    return target


@numba.njit(nogil=True, cache=True)
def sum_voices(
    voice_buffers: np.ndarray,
    count: int,
    voice_params: np.ndarray,
    sends: np.ndarray,
    faulted: np.ndarray,
    current_gains: np.ndarray,
    target_gains: np.ndarray,
    max_step: float,
    premix: np.ndarray,
    send_bus: np.ndarray,
    levels: np.ndarray,
) -> int:
    """Sum `count` samples of every voice into premix[:count, 0:2] (float64, stereo) and
    the reverb send bus send_bus[:count] (mono, post-fader: sends[v] x the voice's gain).

    voice_buffers [n_voices, >= count] are mono voice signals; a voice holding any non-finite
    or absurd sample in this block is zeroed and flagged in `faulted` (it stays muted);
    returns how many voices faulted in this block. current_gains [n_voices, 3] (left, right,
    mono) carries the slewed gains; target_gains [n_voices, 3] is scratch for the block's
    targets (the pan law computed once per block, not per sample). levels[v] gets voice v's
    (peak, mean square) over the block, before its fader.
    """
    n_voices = voice_buffers.shape[0]
    any_solo = False
    for v in range(n_voices):
        if voice_params[v, 3] > 0.5:
            any_solo = True
    new_faults = 0
    for v in range(n_voices):
        bad = False
        for i in range(count):
            x = voice_buffers[v, i]
            if not (abs(x) < FAULT_ABS_LIMIT):  # also true for NaN
                bad = True
                break
        if bad:
            new_faults += 1
            faulted[v] = 1
            for i in range(count):
                voice_buffers[v, i] = 0.0
    for v in range(n_voices):
        audible = faulted[v] == 0 and voice_params[v, 2] < 0.5 and (
            not any_solo or voice_params[v, 3] > 0.5
        )
        gain = voice_params[v, 0] if audible else 0.0
        angle = (voice_params[v, 1] + 1.0) * math.pi / 4.0
        target_gains[v, 0] = gain * math.cos(angle)
        target_gains[v, 1] = gain * math.sin(angle)
        target_gains[v, 2] = gain
    for v in range(n_voices):
        peak = 0.0
        energy = 0.0
        for i in range(count):
            x = voice_buffers[v, i]
            peak = max(peak, abs(x))
            energy += x * x
        levels[v, 0] = peak
        levels[v, 1] = energy / max(count, 1)
    for i in range(count):
        left = 0.0
        right = 0.0
        send = 0.0
        for v in range(n_voices):
            current_gains[v, 0] = _slew(current_gains[v, 0], target_gains[v, 0], max_step)
            current_gains[v, 1] = _slew(current_gains[v, 1], target_gains[v, 1], max_step)
            current_gains[v, 2] = _slew(current_gains[v, 2], target_gains[v, 2], max_step)
            x = voice_buffers[v, i]
            left += current_gains[v, 0] * x
            right += current_gains[v, 1] * x
            send += sends[v] * current_gains[v, 2] * x
        premix[i, 0] = left
        premix[i, 1] = right
        send_bus[i] = send
    return new_faults


@numba.njit(nogil=True, cache=True)
def finish_mix(
    premix: np.ndarray,
    reverb_return: np.ndarray,
    with_reverb: bool,
    input_block: np.ndarray,
    count: int,
    master_params: np.ndarray,
    current_master: np.ndarray,
    limiter_gain: np.ndarray,
    ceiling: float,
    max_step: float,
    release_coef: float,
    out_mix: np.ndarray,
    levels: np.ndarray,
) -> None:
    """out_mix[:count] (float32 stereo) = the premix plus the reverb return (mono, centred)
    and the input monitor, through the master gain and the peak limiter. current_master [2]
    and limiter_gain [1] carry state. levels[0] gets the input's (peak, mean square) over the
    block, levels[1] the mix's (both channels) and levels[2] the limiter's deepest gain (dB,
    in column 0)."""
    input_peak = 0.0
    input_energy = 0.0
    mix_peak = 0.0
    mix_energy = 0.0
    deepest = 1.0
    for i in range(count):
        left = premix[i, 0]
        right = premix[i, 1]
        if with_reverb:
            left += reverb_return[i] * 0.7071067811865476
            right += reverb_return[i] * 0.7071067811865476
        current_master[0] = _slew(current_master[0], master_params[0], max_step)
        current_master[1] = _slew(current_master[1], master_params[1], max_step)
        monitor = current_master[1] * input_block[i] * 0.7071067811865476
        left = (left + monitor) * current_master[0]
        right = (right + monitor) * current_master[0]
        peak = max(abs(left), abs(right))
        g = limiter_gain[0]
        if peak * g > ceiling:
            g = ceiling / peak
        else:
            g = 1.0 - (1.0 - g) * release_coef
        limiter_gain[0] = g
        out_mix[i, 0] = left * g
        out_mix[i, 1] = right * g
        x = input_block[i]
        input_peak = max(input_peak, abs(x))
        input_energy += x * x
        mix_peak = max(mix_peak, peak * g)
        mix_energy += 0.5 * (left * left + right * right) * g * g
        deepest = min(deepest, g)
    n = max(count, 1)
    levels[0, 0], levels[0, 1] = input_peak, input_energy / n
    levels[1, 0], levels[1, 1] = mix_peak, mix_energy / n
    levels[2, 0], levels[2, 1] = 20.0 * math.log10(max(deepest, 1e-6)), 0.0


@numba.njit(nogil=True, cache=True)
def mix_block(
    voice_buffers: np.ndarray,
    input_block: np.ndarray,
    count: int,
    published_voices: np.ndarray,
    published_master: np.ndarray,
    used_voices: np.ndarray,
    used_master: np.ndarray,
    changes: np.ndarray,
    sends: np.ndarray,
    faulted: np.ndarray,
    current_gains: np.ndarray,
    target_gains: np.ndarray,
    current_master: np.ndarray,
    limiter_gain: np.ndarray,
    ceiling: float,
    max_step: float,
    release_coef: float,
    premix: np.ndarray,
    send_bus: np.ndarray,
    with_reverb: bool,
    reverb_state: tuple,
    voice_levels: np.ndarray,
    bus_levels: np.ndarray,
    out_mix: np.ndarray,
) -> tuple[int, int]:
    """The whole mix of one block in one compiled call: `latch_parameters`, `sum_voices`, the
    shared reverb over the send bus (engine/synth/reverb.py's kernel, wet only), `finish_mix`.
    Returns (parameters changed, voices newly faulted)."""
    changed = latch_parameters(published_voices, published_master, used_voices, used_master, changes)
    new_faults = sum_voices(voice_buffers, count, used_voices, sends, faulted, current_gains, target_gains,
                            max_step, premix, send_bus, voice_levels)
    if with_reverb:
        _reverb_process(send_bus, 0, count, *reverb_state)
    finish_mix(premix, send_bus, with_reverb, input_block, count, used_master, current_master, limiter_gain,
               ceiling, max_step, release_coef, out_mix, bus_levels)
    return changed, new_faults
