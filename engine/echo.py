"""Acoustic echo canceller: removes the ensemble Tutti played from the microphone signal.

A laptop microphone hears the ensemble, and the pitch tracker would follow its own output
(DESIGN.md section 9, "Feedback"). Tutti knows exactly what it played, so a normalised LMS
(NLMS) filter models the path from the played mix (the reference r) to the microphone and
subtracts its estimate of the echo before analysis:

    echo[m] ~ sum_j w[j] * r[m - bulk_delay - j],  j = 0 .. taps - 1

The measured round trip (bulk delay) is skipped; the taps cover what follows it. The recurrence
runs per sample, so the output is bit-identical for any split into sub-blocks.

Double talk is the practical problem: the player plays while the ensemble sounds, and the
ensemble follows the player (same notes at other intervals), so the player is largely
predictable from the reference and a plain NLMS learns to cancel the player. Two safeguards:

- Geigel detector: adaptation freezes while the microphone's recent peak exceeds the recent
  reference peak times the echo path's peak gain (the coupling) divided by `freeze_threshold`,
  and for a hangover after: `HOLD_S`, or as long as the double talk lasted (up to `HOLD_MAX_S`),
  so the short gaps between a player's notes do not reopen adaptation. The coupling starts at
  `BOOT_COUPLING` (echo assumed no louder than the mix) and then follows the largest recent
  ratio of predicted-echo peak to reference peak, measured only while the echo estimate is
  `CONFIDENT_DB` above the error.
- After a calibration burst (`calibrate`, the player silent, the detector bypassed) the filter
  knows the room, so a residual above half the estimated echo power is also taken as talk:
  this catches a player quieter than the worst-case echo bound that Geigel assumes.
- Step control by the residual coupling (Mader, Puder and Schmidt, Signal Processing 80, 2000):
  the step is scaled by min(1, beta * P_ref / P_error), where beta, the error-to-reference
  power ratio, is averaged over ~0.4 s of adaptation. With echo alone the factor is about 1;
  when near-end sound slips past the detector, P_error jumps while beta lags, so the filter
  moves only a little.

Limits, measured on the double-talk scenario of tests/test_echo.py while tuning: the filter
learns the room only while the ensemble sounds without the player (an intro, rests, tails);
from continuous, correlated double talk nothing can be learned, not even by adapting only
where the true echo dominates. The detector judges by level, so it needs the player at least
about as loud as the echo at the microphone: a player 1.5 dB below the echo was cancelled
(use the headphone mode). A rise of the echo path gain by more than 1 / `freeze_threshold`
(a louder speaker volume) reads as double talk: call `reset`. A room longer than the taps is
matched note by note, so notes not yet heard alone are cancelled less.

NLMS with a step below 2 and a regularised norm cannot diverge; the detector also freezes on a
loud impulse in the microphone, and non-finite input is treated as silence, so the weights
stay finite. A silent reference (below -100 dBFS over the taps) never updates the filter.
"""

from __future__ import annotations

import numba
import numpy as np

from engine.synth.rng import rng_uniform

PEAK_RELEASE_S = 0.02  # peak trackers fall by 1/e in this time
HOLD_S = 0.05  # adaptation stays frozen this long after double talk was last seen
HOLD_MAX_S = 0.25  # ... or as long as the double talk lasted, up to this
POWER_S = 0.01  # time constant of the short-time echo and error powers
RESIDUAL_S = 0.4  # averaging time of the residual coupling beta (in adapting samples)
COUPLING_S = 2.0  # the coupling forgets a peak ratio over this much confident adaptation
CONFIDENT_DB = 10.0  # echo estimate this far above the error: the filter explains the mic
BOOT_COUPLING = 1.0  # echo path peak gain assumed before the first confident measurement
ERLE_S = 0.5  # time constant of the ERLE telemetry (in adapting samples)
SHARE_S = 0.5  # time constant of the adapting-share telemetry
TALK_RESIDUAL_RATIO = 0.5  # once calibrated: a residual above half the echo estimate is talk
SILENCE_POWER = 1e-10  # mean-square reference below which the filter does not adapt (-100 dBFS)

# Indices into the float64 state vector.
(MIC_PEAK, ECHO_PEAK, REF_PEAK, ECHO_POWER, ERROR_POWER, COUPLING, RESIDUAL, ERLE_MIC,
 ERLE_ERROR, SHARE, CALIBRATED) = range(11)
N_STATE = 11
# Indices into the int64 counter vector.
PROCESSED, PUSHED, HOLD, TALK, TRAIN = range(5)
N_COUNTERS = 5
# Indices into the float64 parameter vector.
(P_STEP, P_FREEZE, P_HOLD, P_HOLD_MAX, P_PEAK_DECAY, P_POWER, P_RESIDUAL, P_COUPLING_DECAY,
 P_CONFIDENT, P_ERLE, P_SHARE) = range(11)
N_PARAMS = 11

# Reassociation lets LLVM vectorise the dot products; the order is fixed per build, so results
# stay bit-identical from run to run and for any block split. No-NaN flags are left out so the
# finiteness guards survive.
_JIT = dict(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"})


@numba.njit(**_JIT)
def _push(ring: np.ndarray, counters: np.ndarray, mix: np.ndarray, count: int) -> None:
    """Append the channel mean of mix[:count] to the doubled ring (each sample stored twice)."""
    size = ring.shape[0] // 2
    mask = size - 1
    pushed = counters[PUSHED]
    for i in range(count):
        value = 0.5 * (np.float64(mix[i, 0]) + np.float64(mix[i, 1]))
        if not abs(value) < 1e30:  # NaN or inf from a faulty voice: treat as silence
            value = 0.0
        index = (pushed + i) & mask
        ring[index] = value
        ring[index + size] = value
    counters[PUSHED] = pushed + count


@numba.njit(**_JIT)
def _cancel(
    mic: np.ndarray,
    offset: int,
    count: int,
    out: np.ndarray,
    ring: np.ndarray,
    weights: np.ndarray,
    state: np.ndarray,
    counters: np.ndarray,
    params: np.ndarray,
    bulk_delay: int,
) -> None:
    """Write mic[offset:offset+count] minus the echo estimate to out[...], adapting the filter.

    `weights[i]` multiplies r[m - bulk_delay - taps + 1 + i] (oldest first), so the window of
    reference samples for mic sample m is one contiguous slice of the doubled ring.
    """
    taps = weights.shape[0]
    size = ring.shape[0] // 2
    mask = size - 1
    step, freeze_threshold = params[P_STEP], params[P_FREEZE]
    hold_samples, hold_max = np.int64(params[P_HOLD]), np.int64(params[P_HOLD_MAX])
    peak_decay, power_coef = params[P_PEAK_DECAY], params[P_POWER]
    residual_coef = params[P_RESIDUAL]
    coupling_decay, confident = params[P_COUPLING_DECAY], params[P_CONFIDENT]
    erle_coef, share_coef = params[P_ERLE], params[P_SHARE]
    regularisation = taps * SILENCE_POWER
    m = counters[PROCESSED]
    hold, talk, train = counters[HOLD], counters[TALK], counters[TRAIN]
    mic_peak, echo_peak, ref_peak = state[MIC_PEAK], state[ECHO_PEAK], state[REF_PEAK]
    echo_power, error_power = state[ECHO_POWER], state[ERROR_POWER]
    coupling, residual = state[COUPLING], state[RESIDUAL]
    erle_mic, erle_error, share = state[ERLE_MIC], state[ERLE_ERROR], state[SHARE]
    calibrated = state[CALIBRATED] > 0.5
    for n in range(offset, offset + count):
        d = np.float64(mic[n])
        if not abs(d) < 1e30:  # NaN or inf from the device: treat as silence
            d = 0.0
        start = (m - bulk_delay - taps + 1) & mask
        window = ring[start:start + taps]
        estimate = 0.0
        energy = 0.0
        for i in range(taps):
            x = window[i]
            estimate += weights[i] * x
            energy += x * x
        error = d - estimate
        out[n] = error

        mic_peak = max(abs(d), mic_peak * peak_decay)
        echo_peak = max(abs(estimate), echo_peak * peak_decay)
        ref_peak = max(abs(window[taps - 1]), ref_peak * peak_decay)
        echo_power += power_coef * (estimate * estimate - echo_power)
        error_power += power_coef * (error * error - error_power)
        talking = mic_peak * freeze_threshold > coupling * ref_peak or (
            calibrated and error_power > TALK_RESIDUAL_RATIO * echo_power
        )
        if talking:
            talk += 1
            hold = min(max(talk, hold_samples), hold_max)
        elif hold > 0:
            hold -= 1
        else:
            talk = 0
        ref_power = energy / taps
        training = train > 0
        if training:
            train -= 1
            calibrated = train == 0
        adapt = (training or hold == 0) and ref_power > SILENCE_POWER
        if adapt:
            residual += residual_coef * (error_power / ref_power - residual)
            factor = 1.0 if training else min(1.0, residual * ref_power / (error_power + SILENCE_POWER))
            gain = step * factor * error / (energy + regularisation)
            for i in range(taps):
                weights[i] += gain * window[i]
            if echo_power > confident * error_power and ref_peak > 0.0:
                coupling = max(echo_peak / ref_peak, coupling * coupling_decay)
            erle_mic += erle_coef * (d * d - erle_mic)
            erle_error += erle_coef * (error * error - erle_error)
        share += share_coef * ((1.0 if adapt else 0.0) - share)
        m += 1
    counters[PROCESSED] = m
    counters[HOLD], counters[TALK], counters[TRAIN] = hold, talk, train
    state[MIC_PEAK], state[ECHO_PEAK], state[REF_PEAK] = mic_peak, echo_peak, ref_peak
    state[ECHO_POWER], state[ERROR_POWER] = echo_power, error_power
    state[COUPLING], state[RESIDUAL] = coupling, residual
    state[ERLE_MIC], state[ERLE_ERROR], state[SHARE] = erle_mic, erle_error, share
    state[CALIBRATED] = 1.0 if calibrated else 0.0


def _smoothing(time_s: float, sample_rate_hz: int) -> float:
    """One-pole smoothing coefficient for time constant `time_s`: y += c * (x - y)."""
    return 1.0 - float(np.exp(-1.0 / (time_s * sample_rate_hz)))


class EchoCanceller:
    """NLMS echo canceller with a double-talk safeguard; all state preallocated.

    Per block: call `process` for each sub-block of the microphone input (any split), then
    `push_reference` with the stereo mix played in that block. `bulk_delay_samples` (the
    measured round trip) must be at least the block size, so every reference sample the filter
    needs has been pushed before `process` needs it. No array is allocated after construction.

    Parameters
    ----------
    sample_rate_hz : engine sample rate.
    bulk_delay_samples : round trip from the played mix to the microphone, in samples (>= 1).
    taps : filter length after the bulk delay, in samples (512 = 10.7 ms at 48 kHz).
    step : NLMS step in (0, 2) with echo alone; 0.5 converges within a second on music.
    max_block : largest `push_reference` count.
    freeze_threshold : Geigel threshold in (0, 1]: adaptation freezes while the microphone's
        recent peak exceeds coupling x reference peak / freeze_threshold. Higher is stricter.
    """

    def __init__(
        self,
        sample_rate_hz: int,
        bulk_delay_samples: int,
        taps: int = 512,
        step: float = 0.5,
        max_block: int = 4096,
        freeze_threshold: float = 0.8,
    ) -> None:
        if bulk_delay_samples < 1:
            raise ValueError(f"bulk_delay_samples must be >= 1, got {bulk_delay_samples}")
        if taps < 1 or max_block < 1:
            raise ValueError(f"taps and max_block must be >= 1, got {taps} and {max_block}")
        if not 0.0 < step < 2.0:
            raise ValueError(f"step must lie in (0, 2), got {step}")
        if not 0.0 < freeze_threshold <= 1.0:
            raise ValueError(f"freeze_threshold must lie in (0, 1], got {freeze_threshold}")
        self.sample_rate_hz = sample_rate_hz
        self.bulk_delay_samples = bulk_delay_samples
        self.taps = taps
        self.max_block = max_block
        ring_size = 1 << int(bulk_delay_samples + taps + max_block).bit_length()
        self._ring = np.zeros(2 * ring_size)
        self._weights = np.zeros(taps)
        self._state = np.zeros(N_STATE)
        self._counters = np.zeros(N_COUNTERS, dtype=np.int64)
        params = np.zeros(N_PARAMS)
        params[P_STEP] = step
        params[P_FREEZE] = freeze_threshold
        params[P_HOLD] = round(HOLD_S * sample_rate_hz)
        params[P_HOLD_MAX] = round(HOLD_MAX_S * sample_rate_hz)
        params[P_PEAK_DECAY] = np.exp(-1.0 / (PEAK_RELEASE_S * sample_rate_hz))
        params[P_POWER] = _smoothing(POWER_S, sample_rate_hz)
        params[P_RESIDUAL] = _smoothing(RESIDUAL_S, sample_rate_hz)
        params[P_COUPLING_DECAY] = np.exp(-1.0 / (COUPLING_S * sample_rate_hz))
        params[P_CONFIDENT] = 10.0 ** (CONFIDENT_DB / 10.0)
        params[P_ERLE] = _smoothing(ERLE_S, sample_rate_hz)
        params[P_SHARE] = _smoothing(SHARE_S, sample_rate_hz)
        self._params = params
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile both kernels for float32 audio, then return to the initial state."""
        self.process(np.zeros(1, dtype=np.float32), 0, 1, np.zeros(1, dtype=np.float32))
        self.push_reference(np.zeros((1, 2), dtype=np.float32), 1)
        self.reset()

    def reset(self) -> None:
        """Forget the room and the reference (a new device, volume or take)."""
        self._ring[:] = 0.0
        self._weights[:] = 0.0
        self._state[:] = 0.0
        self._state[COUPLING] = BOOT_COUPLING
        self._state[RESIDUAL] = 1.0
        self._counters[:] = 0

    def calibrate(self, samples: int) -> None:
        """Adapt unconditionally for the next `samples` microphone samples.

        For a calibration burst the player is known to be silent, so the double-talk detector
        (which would take a loud room for a player) is bypassed and the filter learns the
        room and its coupling from the burst's echo.
        """
        self._counters[TRAIN] = samples

    def process(self, mic_block: np.ndarray, offset: int, count: int, out: np.ndarray) -> None:
        """Write mic_block[offset:offset+count] minus the echo estimate to out[offset:...].

        `mic_block` and `out` are contiguous 1-D float32 (mono), the types compiled at warm-up;
        `out` may be `mic_block` itself.
        """
        _cancel(
            mic_block, offset, count, out, self._ring, self._weights, self._state,
            self._counters, self._params, self.bulk_delay_samples,
        )

    def push_reference(self, mix: np.ndarray, count: int) -> None:
        """Append what was played in this block: mix[:count] is float32 [n, 2] stereo."""
        if count > self.max_block:
            raise ValueError(f"push_reference count {count} exceeds max_block {self.max_block}")
        _push(self._ring, self._counters, mix, count)

    @property
    def weights(self) -> np.ndarray:
        """Copy of the room model (allocates: not for the audio thread); element j
        multiplies r[m - bulk_delay - j]."""
        return self._weights[::-1].copy()

    @property
    def erle_db(self) -> float:
        """Echo return loss enhancement (dB), mic over error power over ~0.5 s of adaptation."""
        mic, error = self._state[ERLE_MIC], self._state[ERLE_ERROR]
        return float(10.0 * np.log10((mic + 1e-20) / (error + 1e-20)))

    @property
    def adapting(self) -> float:
        """Share (0..1) of the last ~0.5 s during which the filter adapted."""
        return float(self._state[SHARE])


@numba.njit(nogil=True, cache=True)
def add_calibration_noise(mix: np.ndarray, count: int, state: np.ndarray, rms: float, remaining: int) -> int:
    """Add white noise of `rms` to both channels of mix[:count] while `remaining` samples last.

    Played at the start of a take (the player silent), it lets the canceller learn the room
    before the ensemble and the player overlap. Returns the samples still to go.
    """
    scale = rms * np.sqrt(3.0) * 2.0
    for i in range(min(count, remaining)):
        value = (rng_uniform(state) - 0.5) * scale
        mix[i, 0] += value
        mix[i, 1] += value
    return max(remaining - count, 0)
