"""Filtered noise: white noise through a real time-varying filter set by band magnitudes.

Bands are defined in Hz, so one model plays at any engine rate (DESIGN.md sections 3 and 5):
`n_bands` centres spaced linearly from 0 to `top_hz` (the model's training Nyquist), and the
magnitude response is the linear interpolation of the band magnitudes between centres
(`band_response`). The top band sits at the training Nyquist, where the model's own synth can
only place a single real cosine: it is read as 0, so the response falls to zero at `top_hz`
without a step, and is zero at and above min(top_hz, sample_rate / 2). The filters' finite
length leaves a transition band of about half a band spacing above that; beyond it the level
is more than 60 dB (typically 90 dB) below the in-band level.

Level contract: the one-sided power spectral density is band_response(f)**2 / top_hz (units^2
per Hz), so a flat magnitude m gives noise of RMS ~ m at every engine rate.

Method. The output at sample n is white noise filtered by the response of the magnitudes m(n),
which ramp linearly per sample (engine/synth/ramp.py). The filter is linear in m, so within a
frame the output is y_start(n) + w(n) * (y_target(n) - y_start(n)), where y_start and y_target
are the same noise stream through the filters of the frame's start and target magnitudes: the
instantaneous power follows the controls sample by sample, and consecutive frames join
seamlessly (frame k's y_target and frame k+1's y_start are one filter on one stream). Once per
frame both are computed by overlap-save fast convolution with windowed zero-phase FIR filters
(4.5 / band_spacing_hz seconds long, Hann window): one real forward FFT of the noise and one
complex inverse FFT carrying both outputs (real and imaginary parts). The noise is generated
ahead, so the filters' length adds no latency: a control acts on the very sample it ramps at.
Each filter's spectrum is a sum of precomputed per-band spectra weighted by the magnitudes (it
is linear in them), so no filter design runs on the audio thread. The filtering runs at the
lowest rate sample_rate / D that keeps room above min(top_hz, sample_rate / 2) for the
transition band of a polyphase interpolator (Kaiser window, about 100 dB), which brings it
back to the engine rate.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from engine.fft import FFTTables, fft_dif, fft_dit, split_real_spectrum
from engine.synth.ramp import (
    CHANGE,
    START,
    ControlRamp,
    ramp_advance,
    ramp_glide,
    ramp_weight,
)
from engine.synth.rng import rng_state, rng_uniform

_FILTER_SPANS = 4.5  # FIR length in band spacings: sets how sharply bands are resolved
_INTERPOLATOR_DB = 100.0  # stopband attenuation of the interpolator
_BASIS_FLOOR = 1e-5  # per-band spectra are cut where they fall below this (relative): the
# filters then leak under -110 dB outside their length
_ROOT_THREE = math.sqrt(3.0)  # uniform noise in [-sqrt(3), sqrt(3)) has unit variance
_READ, _WRITE = 0, 1  # slots of the cursor: next sample of the frame, oldest noise sample


def band_response(
    band_magnitudes: np.ndarray, frequencies_hz: np.ndarray, top_hz: float, limit_hz: float
) -> np.ndarray:
    """Magnitude response at `frequencies_hz`: linear interpolation of the band magnitudes
    between centres linspace(0, top_hz, n_bands), the top band read as 0, and 0 at and above
    `limit_hz` (= min(top_hz, sample_rate / 2)). One-sided PSD = response**2 / top_hz."""
    magnitudes = np.array(band_magnitudes, dtype=np.float64)
    magnitudes[-1] = 0.0
    centres = np.linspace(0.0, top_hz, magnitudes.shape[0])
    frequencies = np.asarray(frequencies_hz, dtype=np.float64)
    response = np.interp(frequencies, centres, magnitudes, right=0.0)
    response[frequencies >= limit_hz] = 0.0
    return response


def _decimation(sample_rate_hz: int, frame_samples: int, limit_hz: float) -> int:
    """The largest D in 8, 4, 2, 1 dividing the frame with sample_rate / D >= 3 * limit_hz."""
    for factor in (8, 4, 2):
        if frame_samples % factor == 0 and sample_rate_hz / factor >= 3.0 * limit_hz:
            return factor
    return 1


def _interpolator(factor: int, sample_rate_hz: int, limit_hz: float) -> np.ndarray:
    """Polyphase taps float64[factor, taps]: low-rate samples -> `factor` times the rate.

    A Kaiser-windowed sinc at the engine rate, cut off at half the low rate, passing up to
    `limit_hz` and stopping from low_rate - limit_hz. Each phase sums to 1 (unit gain in band).
    """
    if factor == 1:
        return np.ones((1, 1))
    low_rate = sample_rate_hz / factor
    transition = (low_rate - 2.0 * limit_hz) / sample_rate_hz  # cycles per sample
    beta = 0.1102 * (_INTERPOLATOR_DB - 8.7)
    length = int(math.ceil((_INTERPOLATOR_DB - 8.0) / (2.285 * 2.0 * math.pi * transition))) + 1
    taps = -(-length // factor)
    n = np.arange(taps * factor) - (taps * factor - 1) / 2.0
    prototype = np.sinc(n / factor) * np.kaiser(taps * factor, beta)
    phases = prototype.reshape(taps, factor).T.copy()
    return phases / phases.sum(axis=1, keepdims=True)


def _band_spectra(
    n_bands: int, top_hz: float, limit_hz: float, rate_hz: float, fft_size: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spectra of the windowed zero-phase FIR of each band's triangle, scaled for the level
    contract and the unscaled inverse FFT, truncated to their support.

    Returns (spectra float64[n_bands, width], first_bin int64[n_bands]): band k contributes
    spectra[k, j] to bin first_bin[k] + j of the filter's spectrum (bins 0..fft_size/2).
    """
    bins = np.fft.rfftfreq(fft_size, 1.0 / rate_hz)
    half_length = (length - 1) // 2
    window = np.zeros(fft_size)
    taper = np.hanning(length + 2)[1:-1]
    window[:half_length + 1] = taper[half_length:]
    window[fft_size - half_length:] = taper[:half_length]
    gain = math.sqrt(rate_hz / (2.0 * top_hz)) / fft_size
    full = np.zeros((n_bands, bins.shape[0]))
    for band in range(n_bands):
        unit = np.zeros(n_bands)
        unit[band] = 1.0
        impulse = np.fft.irfft(band_response(unit, bins, top_hz, limit_hz), fft_size)
        full[band] = gain * np.fft.rfft(impulse * window).real
    floor = _BASIS_FLOOR * np.abs(full).max()
    first = np.zeros(n_bands, dtype=np.int64)
    last = np.zeros(n_bands, dtype=np.int64)
    for band in range(n_bands):
        support = np.nonzero(np.abs(full[band]) > floor)[0]
        if support.size:
            first[band], last[band] = support[0], support[-1] + 1
    width = int(max(1, (last - first).max()))
    first = np.minimum(first, bins.shape[0] - width)
    spectra = np.zeros((n_bands, width))
    for band in range(n_bands):
        spectra[band] = full[band, first[band] : first[band] + width]
    return spectra, first


@numba.njit(nogil=True, cache=True, inline="always")
def _white_sample(rng: np.ndarray) -> float:
    """One sample of unit-variance white noise."""
    return _ROOT_THREE * (2.0 * rng_uniform(rng) - 1.0)


@numba.njit(nogil=True, cache=True)
def _fill_white(samples: np.ndarray, rng: np.ndarray) -> None:
    for i in range(samples.shape[0]):
        samples[i] = _white_sample(rng)


@numba.njit(nogil=True, cache=True)
def _synthesize_frame(
    values: np.ndarray,
    frame_samples: int,
    rng: np.ndarray,
    cursor: np.ndarray,
    ring: np.ndarray,
    work: np.ndarray,
    spectra: np.ndarray,
    band_spectra: np.ndarray,
    first_bin: np.ndarray,
    low: np.ndarray,
    frame: np.ndarray,
    phases: np.ndarray,
    twiddles: np.ndarray,
    bitrev: np.ndarray,
    bitrev_half: np.ndarray,
) -> None:
    """Compute the next frame's y_start and y_target at the engine rate into frame[0], frame[1]."""
    n_bands = band_spectra.shape[0]
    size = ring.shape[0]
    mask = size - 1
    half = size // 2
    factor, taps = phases.shape
    low_samples = frame_samples // factor
    # Filter spectra of the start and target magnitudes (real: the filters are zero-phase).
    h_start = spectra[0]
    h_target = spectra[1]
    h_start[:] = 0.0
    h_target[:] = 0.0
    for band in range(n_bands):
        m_start = values[START, band]
        m_target = values[START, band] + values[CHANGE, band]
        if m_start == 0.0 and m_target == 0.0:
            continue
        row = band_spectra[band]
        base = first_bin[band]
        for j in range(row.shape[0]):
            h_start[base + j] += m_start * row[j]
            h_target[base + j] += m_target * row[j]
    # Advance the noise stream by one low-rate frame; ring holds its latest `size` samples.
    write = cursor[_WRITE]
    for i in range(low_samples):
        ring[(write + i) & mask] = _white_sample(rng)
    write = (write + low_samples) & mask
    cursor[_WRITE] = write
    # Real forward FFT of the segment (pairs packed as complex, loaded bit-reversed).
    re = work[0]
    im = work[1]
    for m in range(half):
        r = bitrev_half[m]
        re[r] = ring[(write + 2 * m) & mask]
        im[r] = ring[(write + 2 * m + 1) & mask]
    fft_dit(re[:half], im[:half], twiddles, -1.0)
    x_re = spectra[2]
    x_im = spectra[3]
    split_real_spectrum(re[:half], im[:half], twiddles, x_re, x_im)
    # P = X * (H_start + i H_target); its inverse is y_start + i y_target.
    for k in range(half + 1):
        a, b = h_start[k], h_target[k]
        re[k] = x_re[k] * a - x_im[k] * b
        im[k] = x_re[k] * b + x_im[k] * a
        if 0 < k < half:
            re[size - k] = x_re[k] * a + x_im[k] * b
            im[size - k] = x_re[k] * b - x_im[k] * a
    fft_dif(re, im, twiddles, 1.0)
    # The valid outputs sit mid-segment; taps - 1 extra samples feed the interpolator.
    start = (size - (low_samples + taps - 1)) // 2
    for t in range(low_samples + taps - 1):
        r = bitrev[start + t]
        low[0, t] = re[r]
        low[1, t] = im[r]
    buffer = re[:low_samples]  # free again: one polyphase branch at a time, vectorised
    for s in range(2):
        for p in range(factor):
            buffer[:] = 0.0
            for j in range(taps):
                tap = phases[p, j]
                source = low[s, taps - 1 - j : taps - 1 - j + low_samples]
                for m in range(low_samples):
                    buffer[m] += tap * source[m]
            for m in range(low_samples):
                frame[s, m * factor + p] = buffer[m]
    cursor[_READ] = 0


@numba.njit(nogil=True, cache=True)
def _retarget(
    values: np.ndarray, counter: np.ndarray, frame_samples: int, targets: np.ndarray
) -> None:
    """Start ramps from the current magnitudes to `targets`."""
    c = counter[0]
    for band in range(targets.shape[0]):
        ramp_glide(values, c, frame_samples, band, targets[band])
    counter[0] = 0


@numba.njit(nogil=True, cache=True)
def _play(
    out: np.ndarray, offset: int, count: int, frame: np.ndarray, counter: np.ndarray,
    cursor: np.ndarray, frame_samples: int,
) -> int:
    """Add up to `count` samples of the current frame into `out`; returns how many it added."""
    read = cursor[_READ]
    n = min(count, frame_samples - read)
    c = counter[0]
    for i in range(n):
        start = frame[0, read + i]
        out[offset + i] += start + (frame[1, read + i] - start) * ramp_weight(c, frame_samples)
        c = ramp_advance(c, 1, frame_samples)
    counter[0] = c
    cursor[_READ] = read + n
    return n


class FilteredNoise:
    """Noise shaped by `n_bands` band magnitudes (linear, per control frame), any block size.

    `set_targets` computes the whole next frame (the cost of a frame lands there); `render`
    only plays it out. Rendering past a frame without new targets holds them; new targets in
    mid-frame drop the rest of the frame (the level stays continuous, the waveform jumps).
    Deterministic for a given `seed`; allocates nothing after construction. `decimation`,
    `fft_size` and `filter_taps` describe the chosen filter for benchmarks and reports.
    """

    def __init__(
        self, sample_rate_hz: int, frame_samples: int, n_bands: int, top_hz: float, seed: int
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.frame_samples = frame_samples
        self.n_bands = n_bands
        self.top_hz = float(top_hz)
        self.limit_hz = min(self.top_hz, sample_rate_hz / 2.0)
        self.decimation = _decimation(sample_rate_hz, frame_samples, self.limit_hz)
        rate_hz = sample_rate_hz / self.decimation
        low_samples = frame_samples // self.decimation
        self._phases = _interpolator(self.decimation, sample_rate_hz, self.limit_hz)
        extra = low_samples + self._phases.shape[1] - 1  # outputs needed per frame
        spacing_hz = self.top_hz / (n_bands - 1)
        wanted = int(math.ceil(_FILTER_SPANS * rate_hz / spacing_hz)) + extra
        self.fft_size = max(16, 1 << (wanted - 1).bit_length())
        self.filter_taps = (self.fft_size - extra + 1) // 2 * 2 - 1  # odd, zero-phase
        self._band_spectra, self._first_bin = _band_spectra(
            n_bands, self.top_hz, self.limit_hz, rate_hz, self.fft_size, self.filter_taps
        )
        self._tables = FFTTables(self.fft_size)
        self._ramp = ControlRamp(n_bands, frame_samples)
        self._seed_state = rng_state(seed)
        self._rng = self._seed_state.copy()
        self._cursor = np.zeros(2, dtype=np.int64)
        self._ring = np.zeros(self.fft_size)
        self._work = np.zeros((2, self.fft_size))
        self._spectra = np.zeros((4, self.fft_size // 2 + 1))
        self._low = np.zeros((2, extra))
        self._frame = np.zeros((2, frame_samples))
        self._kernel_states()
        self.reset()

    def set_targets(self, band_magnitudes: np.ndarray) -> None:
        """Targets for the next frame: float64[n_bands] magnitudes (see `band_response`)."""
        if band_magnitudes.shape != (self.n_bands,):
            raise ValueError(
                f"expected {self.n_bands} band magnitudes, got shape {band_magnitudes.shape}"
            )
        _retarget(self._ramp.values, self._ramp.counter, self.frame_samples, band_magnitudes)
        self._next_frame()

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        """Add `count` samples into out[offset:offset + count] (float32 or float64, 1-D)."""
        self.render_rest(out, offset, count, _play(out, offset, count, *self.play_state))

    def render_rest(self, out: np.ndarray, offset: int, count: int, done: int) -> None:
        """After `done` of `count` samples were played: past the frame without new targets,
        hold them for the rest."""
        while done < count:
            self._next_frame()
            done += _play(out, offset + done, count - done, *self.play_state)

    def _kernel_states(self) -> None:
        """The arguments `_play` takes after (out, offset, count), `_retarget` before the
        targets, and `_synthesize_frame`, bound once: a voice's synth renders and retargets its
        parts in one compiled call each (engine/synth/voice_synth.py)."""
        self.play_state = (self._frame, self._ramp.counter, self._cursor, self.frame_samples)
        self.retarget_state = (self._ramp.values, self._ramp.counter, self.frame_samples)
        self.frame_state = (
            self._ramp.values, self.frame_samples, self._rng, self._cursor,
            self._ring, self._work, self._spectra, self._band_spectra, self._first_bin,
            self._low, self._frame, self._phases, self._tables.twiddles, self._tables.bitrev,
            self._tables.bitrev_half,
        )

    # Fields of `state_arrays`: what changes as the noise plays, then the tables it reads.
    STATE_FIELDS = ("values", "counter", "rng", "cursor", "ring", "work", "spectra", "low", "frame")
    TABLE_FIELDS = ("band_spectra", "first_bin", "phases", "twiddles", "bitrev", "bitrev_half")

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The mutable state and the tables by name (engine/synth/stacking.py)."""
        return {
            "values": self._ramp.values, "counter": self._ramp.counter, "rng": self._rng,
            "cursor": self._cursor, "ring": self._ring, "work": self._work, "spectra": self._spectra,
            "low": self._low, "frame": self._frame, "band_spectra": self._band_spectra,
            "first_bin": self._first_bin, "phases": self._phases, "twiddles": self._tables.twiddles,
            "bitrev": self._tables.bitrev, "bitrev_half": self._tables.bitrev_half,
        }

    def adopt_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Keep the mutable state in `arrays` (views a synth bank made from `state_arrays`)."""
        self._ramp.values, self._ramp.counter = arrays["values"], arrays["counter"]
        self._rng, self._cursor, self._ring = arrays["rng"], arrays["cursor"], arrays["ring"]
        self._work, self._spectra, self._low, self._frame = arrays["work"], arrays["spectra"], arrays["low"], arrays["frame"]
        self._kernel_states()

    def reset(self) -> None:
        """Silence, and the noise stream back to its start for this seed."""
        self._ramp.reset()
        self._rng[0] = self._seed_state[0]
        _fill_white(self._ring, self._rng)
        self._cursor[:] = 0
        self._next_frame()

    def _next_frame(self) -> None:
        _synthesize_frame(*self.frame_state)
