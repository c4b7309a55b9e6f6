"""Feature analysis v1, the live numba twin of `reference.py` (same definitions, tested equal).

`StreamingAnalyzer` keeps the last `history` input samples in a linear buffer whose newest
frame occupies the tail; `push` writes into that tail and `compute_frame` analyses the buffer,
then shifts it left by one hop. After construction (which compiles and warms every kernel),
`push` and `compute_frame` allocate nothing but the one small record numba makes for each array
argument of a call (2 per push, 3 per frame): every array lives in two buffers made here, one
float64 and one int64, cut into segments inside the kernels.

The YIN difference function is computed through FFTs, d(tau) = e_now + e_lag(tau) - 2 r(tau),
with r the cross-correlation of the current window with the span, instead of the reference's
direct sums (about 0.04 ms instead of 0.14 ms, vectorised, per 48 kHz frame here); the
reference's rounding floor makes both agree on silence and DC.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from engine.features.frames import CHROMA, F0, LOUDNESS, N_FEATURES, ONSET, VOICING, FeatureFrames
from engine.features.reference import (
    CHROMA_FLOOR_DB,
    F0_MAX_HZ,
    F0_MIN_HZ,
    LOUDNESS_FLOOR_DB,
    ONSET_GAMMA,
    YIN_ROUNDING_FLOOR,
    YIN_THRESHOLD,
    AnalysisSizes,
    analysis_sizes,
    chroma_bin_classes,
    chroma_power_scale,
    hann,
    loudness_bin_weights,
    next_pow2,
    onset_bin_count,
    onset_magnitude_scale,
    power_floor,
)
from engine.rates import DEFAULT_BLOCK_SAMPLES

_JIT = {"nogil": True, "cache": True}
# Module constants are frozen into the kernels at compile time.
_CHROMA_START = CHROMA.start
_LOUDNESS_FLOOR = power_floor(LOUDNESS_FLOOR_DB)
_CHROMA_FLOOR = power_floor(CHROMA_FLOOR_DB)

# Segments of the float64 state buffer, in order. A complex FFT takes 4 float segments
# (twiddle_re, twiddle_im, re, im) and one int segment (bitrev); a real FFT takes its half-size
# complex FFT's 4, then split_cos, split_sin, spec_re, spec_im.
(
    _HISTORY,
    _ONSET_PREVIOUS,
    _YIN_ENERGY,
    _YIN_CORRELATION,
    _YIN_D,
    _YIN_CMND,
    _LOUDNESS_WINDOW,
    _LOUDNESS_WEIGHTS,
    _CHROMA_WINDOW,
    _FLOAT_SCALARS,  # sample_rate_hz, onset magnitude scale, chroma power scale
) = range(10)
_YIN_PACKED = 10
_YIN_CROSS = 14
_LOUDNESS_FFT = 22
_CHROMA_FFT = 30
_N_FLOAT_SEGMENTS = 38
# Segments of the int64 buffer, which starts with the float then the int segment offsets.
_YIN_PACKED_BITREV, _YIN_CROSS_BITREV, _LOUDNESS_BITREV, _CHROMA_BITREV = range(4)
_CHROMA_CLASSES = 4
_INT_SCALARS = 5  # hop, yin_window, tau_min, tau_max
_N_INT_SEGMENTS = 6


class ComplexFFT(NamedTuple):
    """Tables and scratch for an in-place radix-2 FFT of `len(re)` complex points."""

    bitrev: np.ndarray  # int64[n]: bit-reversed index
    twiddle_re: np.ndarray  # float64[n - 1]: stage of half-size h at [h - 1, 2h - 1):
    twiddle_im: np.ndarray  # e^{-i pi k / h}, k < h
    re: np.ndarray  # float64[n] scratch
    im: np.ndarray  # float64[n] scratch


class RealFFT(NamedTuple):
    """An FFT of `n` real points done as an n/2-point complex FFT plus a split step."""

    half: ComplexFFT
    split_cos: np.ndarray  # float64[n/2 + 1]: cos(2 pi k / n)
    split_sin: np.ndarray  # float64[n/2 + 1]: sin(2 pi k / n)
    spec_re: np.ndarray  # float64[n/2 + 1]: bins 0..n/2 (input of an inverse, or output)
    spec_im: np.ndarray


@numba.njit(fastmath={"contract"}, **_JIT)
def _fft_in_place(plan: ComplexFFT) -> None:
    """Forward DFT (e^{-2 pi i k n / N}) of plan.re + i plan.im in place, N >= 4."""
    re, im, bitrev = plan.re, plan.im, plan.bitrev
    n = re.shape[0]
    for i in range(n):
        j = bitrev[i]
        if j > i:
            re[i], re[j] = re[j], re[i]
            im[i], im[j] = im[j], im[i]
    # The stages of half-size 1 and 2 as one radix-4 pass (twiddles 1 and -i).
    for s in range(0, n, 4):
        sum01_re = re[s] + re[s + 1]
        sum01_im = im[s] + im[s + 1]
        dif01_re = re[s] - re[s + 1]
        dif01_im = im[s] - im[s + 1]
        sum23_re = re[s + 2] + re[s + 3]
        sum23_im = im[s + 2] + im[s + 3]
        dif23_re = re[s + 2] - re[s + 3]
        dif23_im = im[s + 2] - im[s + 3]
        re[s] = sum01_re + sum23_re
        im[s] = sum01_im + sum23_im
        re[s + 2] = sum01_re - sum23_re
        im[s + 2] = sum01_im - sum23_im
        re[s + 1] = dif01_re + dif23_im
        im[s + 1] = dif01_im - dif23_re
        re[s + 3] = dif01_re - dif23_im
        im[s + 3] = dif01_im + dif23_re
    half = 4
    while half < n:
        w_re = plan.twiddle_re[half - 1 : 2 * half - 1]
        w_im = plan.twiddle_im[half - 1 : 2 * half - 1]
        for start in range(0, n, 2 * half):
            a_re = re[start : start + half]
            a_im = im[start : start + half]
            b_re = re[start + half : start + 2 * half]
            b_im = im[start + half : start + 2 * half]
            for k in range(half):
                t_re = w_re[k] * b_re[k] - w_im[k] * b_im[k]
                t_im = w_re[k] * b_im[k] + w_im[k] * b_re[k]
                b_re[k] = a_re[k] - t_re
                b_im[k] = a_im[k] - t_im
                a_re[k] += t_re
                a_im[k] += t_im
        half *= 2


@numba.njit(**_JIT)
def _windowed_rfft(source: np.ndarray, end: int, window: np.ndarray, plan: RealFFT) -> None:
    """Spectrum (bins 0..n/2, into plan.spec_*) of window * source[end - len(window):end],
    zero-padded to n = 2 * len(plan.half.re)."""
    z = plan.half
    m = z.re.shape[0]
    length = window.shape[0]
    start = end - length
    z.re[length // 2 :] = 0.0
    z.im[length // 2 :] = 0.0
    for i in range(length // 2):
        z.re[i] = window[2 * i] * source[start + 2 * i]
        z.im[i] = window[2 * i + 1] * source[start + 2 * i + 1]
    if length % 2:
        z.re[length // 2] = window[length - 1] * source[end - 1]
    _fft_in_place(z)
    for k in range(m + 1):
        a = k if k < m else 0
        b = m - k if k > 0 else 0
        # even part E = (Z[k] + conj Z[m-k]) / 2, odd part O = (Z[k] - conj Z[m-k]) / 2i
        even_re = 0.5 * (z.re[a] + z.re[b])
        even_im = 0.5 * (z.im[a] - z.im[b])
        odd_re = 0.5 * (z.im[a] + z.im[b])
        odd_im = -0.5 * (z.re[a] - z.re[b])
        c = plan.split_cos[k]
        s = plan.split_sin[k]
        plan.spec_re[k] = even_re + c * odd_re + s * odd_im
        plan.spec_im[k] = even_im + c * odd_im - s * odd_re


@numba.njit(**_JIT)
def _inverse_rfft(plan: RealFFT, out: np.ndarray) -> None:
    """Real inverse DFT (with 1/n) of the Hermitian bins in plan.spec_*: n samples into out."""
    z = plan.half
    m = z.re.shape[0]
    for k in range(m):
        b = m - k
        # E = (X[k] + conj X[m-k]) / 2, O = (X[k] - conj X[m-k]) e^{+2 pi i k / n} / 2;
        # z = conj(E + i O) so that a forward FFT computes the inverse.
        even_re = 0.5 * (plan.spec_re[k] + plan.spec_re[b])
        even_im = 0.5 * (plan.spec_im[k] - plan.spec_im[b])
        diff_re = 0.5 * (plan.spec_re[k] - plan.spec_re[b])
        diff_im = 0.5 * (plan.spec_im[k] + plan.spec_im[b])
        c = plan.split_cos[k]
        s = plan.split_sin[k]
        odd_re = diff_re * c - diff_im * s
        odd_im = diff_re * s + diff_im * c
        z.re[k] = even_re - odd_im
        z.im[k] = -(even_im + odd_re)
    _fft_in_place(z)
    scale = 1.0 / m
    for i in range(m):
        out[2 * i] = z.re[i] * scale
        out[2 * i + 1] = -z.im[i] * scale


@numba.njit(**_JIT)
def _yin_difference(
    history: np.ndarray,
    window: int,
    tau_max: int,
    packed: ComplexFFT,
    cross: RealFFT,
    energy: np.ndarray,
    correlation: np.ndarray,
    d: np.ndarray,
) -> None:
    """d[0..tau_max+1] of the reference (`yin_difference`) for the span ending history's tail.

    One complex FFT of span + i * current window gives both spectra; their cross-spectrum's
    inverse is r(u) = sum_j now[j] span[u + j]; energies come from a running sum of squares.
    """
    span_len = window + tau_max + 1
    start = history.shape[0] - span_len
    n = packed.re.shape[0]
    packed.re[:span_len] = history[start:]
    packed.re[span_len:] = 0.0
    packed.im[:window] = history[start + span_len - window :]
    packed.im[window:] = 0.0
    _fft_in_place(packed)
    for k in range(n // 2 + 1):
        a = k
        b = n - k if k > 0 else 0
        span_re = 0.5 * (packed.re[a] + packed.re[b])
        span_im = 0.5 * (packed.im[a] - packed.im[b])
        now_re = 0.5 * (packed.im[a] + packed.im[b])
        now_im = -0.5 * (packed.re[a] - packed.re[b])
        cross.spec_re[k] = span_re * now_re + span_im * now_im
        cross.spec_im[k] = span_im * now_re - span_re * now_im
    _inverse_rfft(cross, correlation)
    energy[0] = 0.0
    for i in range(span_len):
        x = history[start + i]
        energy[i + 1] = energy[i] + x * x
    floor = YIN_ROUNDING_FLOOR * energy[span_len]
    now_energy = energy[span_len] - energy[span_len - window]
    d[0] = 0.0
    for tau in range(1, tau_max + 2):
        lag_start = span_len - window - tau
        value = (
            now_energy
            + (energy[lag_start + window] - energy[lag_start])
            - 2.0 * correlation[lag_start]
        )
        d[tau] = value if value > floor else 0.0


@numba.njit(**_JIT)
def _yin(d: np.ndarray, cmnd: np.ndarray, tau_min: int, tau_max: int, sample_rate_hz: float):
    """(f0_hz, voicing) from d, as the reference's cmnd, yin_pick and parabola (cmnd: scratch)."""
    cmnd[0] = 1.0
    total = 0.0
    for tau in range(1, tau_max + 2):
        total += d[tau]
        cmnd[tau] = d[tau] * tau / total if total > 0.0 else 1.0
    best = -1
    tau = tau_min
    while tau <= tau_max:
        if cmnd[tau] < YIN_THRESHOLD:
            best = tau
            while tau <= tau_max and cmnd[tau] < YIN_THRESHOLD:
                if cmnd[tau] < cmnd[best]:
                    best = tau
                tau += 1
            break
        tau += 1
    if best < 0:
        best = tau_min
        for tau in range(tau_min + 1, tau_max + 1):
            if cmnd[tau] < cmnd[best]:
                best = tau
    h = max(1, min((best + 32) // 64, tau_max + 1 - best, best - 1))
    before = d[best - h]
    at = d[best]
    after = d[best + h]
    curvature = before - 2.0 * at + after
    shift = 0.0
    if curvature > 0.0:
        shift = min(1.0, max(-1.0, 0.5 * (before - after) / curvature))
    voicing = min(1.0, max(0.0, 1.0 - cmnd[best] / (2.0 * YIN_THRESHOLD)))
    return sample_rate_hz / (best + h * shift), voicing


@numba.njit(**_JIT)
def _floats_at(floats: np.ndarray, ints: np.ndarray, segment: int) -> np.ndarray:
    """View of float segment `segment` (offsets lead the int buffer)."""
    return floats[ints[segment] : ints[segment + 1]]


@numba.njit(**_JIT)
def _ints_at(ints: np.ndarray, segment: int) -> np.ndarray:
    """View of int segment `segment`."""
    base = _N_FLOAT_SEGMENTS + 1
    return ints[ints[base + segment] : ints[base + segment + 1]]


@numba.njit(**_JIT)
def _complex_fft_at(floats: np.ndarray, ints: np.ndarray, first: int, bitrev: int) -> ComplexFFT:
    return ComplexFFT(
        _ints_at(ints, bitrev),
        _floats_at(floats, ints, first),
        _floats_at(floats, ints, first + 1),
        _floats_at(floats, ints, first + 2),
        _floats_at(floats, ints, first + 3),
    )


@numba.njit(**_JIT)
def _real_fft_at(floats: np.ndarray, ints: np.ndarray, first: int, bitrev: int) -> RealFFT:
    return RealFFT(
        _complex_fft_at(floats, ints, first, bitrev),
        _floats_at(floats, ints, first + 4),
        _floats_at(floats, ints, first + 5),
        _floats_at(floats, ints, first + 6),
        _floats_at(floats, ints, first + 7),
    )


@numba.njit(**_JIT)
def _push_samples(
    floats: np.ndarray, at: int, block: np.ndarray, offset: int, count: int
) -> None:
    """History samples at..at+count (the history is float segment 0) = block[offset:+count]."""
    for i in range(count):
        floats[at + i] = block[offset + i]


@numba.njit(**_JIT)
def _reset(floats: np.ndarray, ints: np.ndarray) -> None:
    """Silence the history and the onset memory."""
    _floats_at(floats, ints, _HISTORY)[:] = 0.0
    _floats_at(floats, ints, _ONSET_PREVIOUS)[:] = 0.0


@numba.njit(**_JIT)
def _compute_frame(floats: np.ndarray, ints: np.ndarray, out: np.ndarray) -> None:
    """All 16 features of the frame ending at the history's last sample, then shift by a hop."""
    history = _floats_at(floats, ints, _HISTORY)
    end = history.shape[0]
    sample_rate_hz, onset_scale, chroma_scale = _floats_at(floats, ints, _FLOAT_SCALARS)
    hop, yin_window, tau_min, tau_max = _ints_at(ints, _INT_SCALARS)

    yin_d = _floats_at(floats, ints, _YIN_D)
    _yin_difference(
        history,
        yin_window,
        tau_max,
        _complex_fft_at(floats, ints, _YIN_PACKED, _YIN_PACKED_BITREV),
        _real_fft_at(floats, ints, _YIN_CROSS, _YIN_CROSS_BITREV),
        _floats_at(floats, ints, _YIN_ENERGY),
        _floats_at(floats, ints, _YIN_CORRELATION),
        yin_d,
    )
    out[F0], out[VOICING] = _yin(
        yin_d, _floats_at(floats, ints, _YIN_CMND), tau_min, tau_max, sample_rate_hz
    )

    loudness_fft = _real_fft_at(floats, ints, _LOUDNESS_FFT, _LOUDNESS_BITREV)
    _windowed_rfft(history, end, _floats_at(floats, ints, _LOUDNESS_WINDOW), loudness_fft)
    weights = _floats_at(floats, ints, _LOUDNESS_WEIGHTS)
    power = 0.0
    for k in range(weights.shape[0]):
        power += weights[k] * (loudness_fft.spec_re[k] ** 2 + loudness_fft.spec_im[k] ** 2)
    out[LOUDNESS] = 10.0 * np.log10(max(power, _LOUDNESS_FLOOR))

    previous = _floats_at(floats, ints, _ONSET_PREVIOUS)
    flux = 0.0
    for k in range(previous.shape[0]):
        magnitude = np.sqrt(loudness_fft.spec_re[k] ** 2 + loudness_fft.spec_im[k] ** 2)
        level = np.log1p(ONSET_GAMMA * magnitude * onset_scale)
        flux += max(level - previous[k], 0.0)
        previous[k] = level
    out[ONSET] = flux / previous.shape[0]

    chroma_fft = _real_fft_at(floats, ints, _CHROMA_FFT, _CHROMA_BITREV)
    _windowed_rfft(history, end, _floats_at(floats, ints, _CHROMA_WINDOW), chroma_fft)
    classes = _ints_at(ints, _CHROMA_CLASSES)
    chroma = out[_CHROMA_START : _CHROMA_START + 12]
    chroma[:] = 0.0
    band = 0.0
    for k in range(classes.shape[0]):
        if classes[k] >= 0:
            bin_power = chroma_fft.spec_re[k] ** 2 + chroma_fft.spec_im[k] ** 2
            chroma[classes[k]] += bin_power
            band += bin_power
    scale = 1.0 / band if band * chroma_scale >= _CHROMA_FLOOR else 0.0
    for c in range(12):
        chroma[c] *= scale

    for i in range(end - hop):
        history[i] = history[i + hop]


def _complex_fft_tables(n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(bitrev, [twiddle_re, twiddle_im, re, im]) of an n-point complex FFT, n >= 4."""
    bits = n.bit_length() - 1
    index = np.arange(n)
    bitrev = np.zeros(n, dtype=np.int64)
    for bit in range(bits):
        bitrev |= ((index >> bit) & 1) << (bits - 1 - bit)
    angles = np.concatenate([-np.pi * np.arange(h) / h for h in 2 ** np.arange(bits)])
    return bitrev, [np.cos(angles), np.sin(angles), np.zeros(n), np.zeros(n)]


def _real_fft_tables(n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(bitrev, 8 float segments) of an n-point real FFT, n >= 8."""
    bitrev, half = _complex_fft_tables(n // 2)
    angles = 2.0 * np.pi * np.arange(n // 2 + 1) / n
    spectrum = [np.zeros(n // 2 + 1), np.zeros(n // 2 + 1)]
    return bitrev, half + [np.cos(angles), np.sin(angles)] + spectrum


def _pack_state(sizes: AnalysisSizes) -> tuple[np.ndarray, np.ndarray]:
    """The (float64, int64) buffers holding every table, scratch array and the history."""
    yin_fft = next_pow2(sizes.yin_span)
    packed_bitrev, packed = _complex_fft_tables(yin_fft)
    cross_bitrev, cross = _real_fft_tables(yin_fft)
    loudness_bitrev, loudness = _real_fft_tables(sizes.loudness_fft)
    chroma_bitrev, chroma = _real_fft_tables(sizes.chroma_fft)
    float_segments = [
        np.zeros(sizes.history),
        np.zeros(onset_bin_count(sizes)),
        np.zeros(sizes.yin_span + 1),
        np.zeros(yin_fft),
        np.zeros(sizes.tau_max + 2),
        np.zeros(sizes.tau_max + 2),
        hann(sizes.loudness_window),
        loudness_bin_weights(sizes),
        hann(sizes.chroma_window),
        np.array(
            [sizes.sample_rate_hz, onset_magnitude_scale(sizes), chroma_power_scale(sizes)]
        ),
        *packed,
        *cross,
        *loudness,
        *chroma,
    ]
    int_segments = [
        packed_bitrev,
        cross_bitrev,
        loudness_bitrev,
        chroma_bitrev,
        chroma_bin_classes(sizes),
        np.array([sizes.frame_samples, sizes.yin_window, sizes.tau_min, sizes.tau_max]),
    ]
    assert len(float_segments) == _N_FLOAT_SEGMENTS and len(int_segments) == _N_INT_SEGMENTS
    float_offsets = np.cumsum([0] + [len(segment) for segment in float_segments])
    header = _N_FLOAT_SEGMENTS + _N_INT_SEGMENTS + 2
    int_offsets = header + np.cumsum([0] + [len(segment) for segment in int_segments])
    floats = np.concatenate(float_segments).astype(np.float64)
    ints = np.concatenate([float_offsets, int_offsets, *int_segments]).astype(np.int64)
    return floats, ints


class StreamingAnalyzer:
    """Causal per-frame features v1 for live use: push samples, compute a frame every hop.

    One analyzer per input signal, used by one thread. `push` takes at most the samples left
    in the current frame (`frame_samples - pending`): callers split blocks at frame edges.
    """

    def __init__(
        self,
        sample_rate_hz: int,
        f0_min_hz: float = F0_MIN_HZ,
        f0_max_hz: float = F0_MAX_HZ,
    ) -> None:
        self.sizes: AnalysisSizes = analysis_sizes(sample_rate_hz, f0_min_hz, f0_max_hz)
        self.sample_rate_hz = sample_rate_hz
        self.frame_samples = self.sizes.frame_samples
        self._floats, self._ints = _pack_state(self.sizes)
        self._frame_start = self.sizes.history - self.frame_samples
        self._pending = 0
        self.warm_up()

    @property
    def pending(self) -> int:
        """Samples pushed since the last frame (0..frame_samples)."""
        return self._pending

    def warm_up(self) -> None:
        """Run every kernel once (float32 and float64 input) so the first live frame is fast."""
        out = np.zeros(N_FEATURES)
        for dtype in (np.float32, np.float64):
            self.reset()
            self.push(np.zeros(self.frame_samples, dtype=dtype), 0, self.frame_samples)
            self.compute_frame(out)
        self.reset()

    def reset(self) -> None:
        """Forget all input: history back to silence, no pending samples."""
        _reset(self._floats, self._ints)
        self._pending = 0

    def push(self, block: np.ndarray, offset: int, count: int) -> None:
        """Append block[offset:offset + count] (1-D float32 or float64) to the history."""
        if block.dtype != np.float32 and block.dtype != np.float64 or block.ndim != 1:
            raise ValueError(f"push takes a 1-D float32 or float64 array, not {block.dtype}")
        if count < 0 or offset < 0 or offset + count > block.shape[0]:
            raise ValueError(f"samples {offset}..{offset + count} lie outside the block")
        if self._pending + count > self.frame_samples:
            raise ValueError(
                f"{count} samples overrun the frame ({self._pending} of {self.frame_samples} "
                "pending): split blocks at frame edges and call compute_frame in between"
            )
        _push_samples(self._floats, self._frame_start + self._pending, block, offset, count)
        self._pending += count

    def compute_frame(self, out: np.ndarray) -> None:
        """Write the frame's 16 features (FEATURE_NAMES order) into `out` (float64[16])."""
        if self._pending != self.frame_samples:
            raise ValueError(
                f"a frame needs {self.frame_samples} samples, {self._pending} are pending: "
                "push the rest first"
            )
        _compute_frame(self._floats, self._ints, out)
        self._pending = 0

    def analyze(
        self, audio: np.ndarray, block_samples: int = DEFAULT_BLOCK_SAMPLES
    ) -> FeatureFrames:
        """Features of a whole signal fed in blocks of `block_samples`, from silence (resets).

        Offline convenience (allocates); the frames do not depend on `block_samples`.
        """
        audio = np.asarray(audio)
        if audio.dtype != np.float32:
            audio = np.ascontiguousarray(audio, dtype=np.float64)
        hop = self.frame_samples
        values = np.zeros((len(audio) // hop, N_FEATURES))
        self.reset()
        frame = 0
        for block_start in range(0, len(audio), block_samples):
            position = block_start
            block_end = min(block_start + block_samples, len(audio))
            while position < block_end:
                count = min(hop - self._pending, block_end - position)
                self.push(audio, position, count)
                position += count
                if self._pending == hop:
                    self.compute_frame(values[frame])
                    frame += 1
        self.reset()
        return FeatureFrames(values, self.sample_rate_hz, hop)
