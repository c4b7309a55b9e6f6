"""In-place radix-2 FFTs for numba kernels (numba has no np.fft), allocation-free.

The one FFT of the engine: the live feature analyser (`engine.features.streaming`) and the
synthesis core (`engine.synth.noise`) both build on these kernels.

Data live in two float64 arrays (real, imaginary parts) so the butterflies vectorise. The
decimation-in-time transform takes its input in bit-reversed order and returns natural order;
the decimation-in-frequency one takes natural order and returns bit-reversed order, so a
filter (load bit-reversed, DIT forward, multiply, DIF inverse, read bit-reversed) needs no
permutation pass. Neither scales: a forward + inverse round trip multiplies by n.
"""

from __future__ import annotations

import numba
import numpy as np


class FFTTables:
    """Twiddles and bit-reversal permutations for transforms of up to `n` points (a power of 2).

    `twiddles[0, h - 1 + j]` and `twiddles[1, h - 1 + j]` hold cos and sin of pi*j/h for the
    stage whose butterflies span h, so each stage reads its twiddles contiguously and the same
    table serves every size up to n. `bitrev` permutes n points, `bitrev_half` n/2 points.
    """

    def __init__(self, n: int) -> None:
        if n < 8 or n & (n - 1):
            raise ValueError(f"FFT size {n} is not a power of two >= 8")
        self.twiddles = np.empty((2, n - 1))
        half = 1
        while half < n:
            angles = np.pi * np.arange(half) / half
            self.twiddles[0, half - 1 : 2 * half - 1] = np.cos(angles)
            self.twiddles[1, half - 1 : 2 * half - 1] = np.sin(angles)
            half *= 2
        self.bitrev = _bit_reversal(n)
        self.bitrev_half = _bit_reversal(n // 2)


def _bit_reversal(n: int) -> np.ndarray:
    bits = n.bit_length() - 1
    index = np.arange(n)
    reversed_index = np.zeros(n, dtype=np.int64)
    for bit in range(bits):
        reversed_index |= ((index >> bit) & 1) << (bits - 1 - bit)
    return reversed_index


@numba.njit(nogil=True, cache=True)
def fft_dit(re: np.ndarray, im: np.ndarray, twiddles: np.ndarray, sign: float) -> None:
    """Bit-reversed input -> natural order: X[j] = sum_k x[k] exp(sign * 2i*pi*j*k/n), n >= 4."""
    n = re.shape[0]
    for s in range(0, n, 4):  # the first two stages as one radix-4 pass (no multiplies)
        ar = re[s] + re[s + 1]
        ai = im[s] + im[s + 1]
        br = re[s] - re[s + 1]
        bi = im[s] - im[s + 1]
        cr = re[s + 2] + re[s + 3]
        ci = im[s + 2] + im[s + 3]
        dr = -sign * (im[s + 2] - im[s + 3])  # (x2 - x3) * exp(sign * i*pi/2)
        di = sign * (re[s + 2] - re[s + 3])
        re[s] = ar + cr
        im[s] = ai + ci
        re[s + 2] = ar - cr
        im[s + 2] = ai - ci
        re[s + 1] = br + dr
        im[s + 1] = bi + di
        re[s + 3] = br - dr
        im[s + 3] = bi - di
    half = 4
    while half < n:
        wr = twiddles[0, half - 1 : 2 * half - 1]
        ws = twiddles[1, half - 1 : 2 * half - 1]
        for start in range(0, n, 2 * half):
            ar = re[start : start + half]
            ai = im[start : start + half]
            br = re[start + half : start + 2 * half]
            bi = im[start + half : start + 2 * half]
            for j in range(half):
                wi = sign * ws[j]
                tr = wr[j] * br[j] - wi * bi[j]
                ti = wr[j] * bi[j] + wi * br[j]
                br[j] = ar[j] - tr
                bi[j] = ai[j] - ti
                ar[j] += tr
                ai[j] += ti
        half *= 2


@numba.njit(nogil=True, cache=True)
def fft_dif(re: np.ndarray, im: np.ndarray, twiddles: np.ndarray, sign: float) -> None:
    """Natural-order input -> bit-reversed order, the same sum as `fft_dit`, n >= 4."""
    n = re.shape[0]
    half = n // 2
    while half >= 4:
        wr = twiddles[0, half - 1 : 2 * half - 1]
        ws = twiddles[1, half - 1 : 2 * half - 1]
        for start in range(0, n, 2 * half):
            ar = re[start : start + half]
            ai = im[start : start + half]
            br = re[start + half : start + 2 * half]
            bi = im[start + half : start + 2 * half]
            for j in range(half):
                wi = sign * ws[j]
                dr = ar[j] - br[j]
                di = ai[j] - bi[j]
                ar[j] += br[j]
                ai[j] += bi[j]
                br[j] = dr * wr[j] - di * wi
                bi[j] = dr * wi + di * wr[j]
        half //= 2
    for s in range(0, n, 4):  # the last two stages as one radix-4 pass (no multiplies)
        ar = re[s] + re[s + 2]
        ai = im[s] + im[s + 2]
        br = re[s] - re[s + 2]
        bi = im[s] - im[s + 2]
        cr = re[s + 1] + re[s + 3]
        ci = im[s + 1] + im[s + 3]
        dr = -sign * (im[s + 1] - im[s + 3])  # (x1 - x3) * exp(sign * i*pi/2)
        di = sign * (re[s + 1] - re[s + 3])
        re[s] = ar + cr
        im[s] = ai + ci
        re[s + 1] = ar - cr
        im[s + 1] = ai - ci
        re[s + 2] = br + dr
        im[s + 2] = bi + di
        re[s + 3] = br - dr
        im[s + 3] = bi - di


@numba.njit(nogil=True, cache=True)
def split_real_spectrum(
    re: np.ndarray, im: np.ndarray, twiddles: np.ndarray, out_re: np.ndarray, out_im: np.ndarray
) -> None:
    """Spectrum X[0..n/2] of a real n-point signal x from Z = fft_dit of z[m] = x[2m] + i x[2m+1].

    `re`, `im` hold Z (n/2 points, natural order); `twiddles` come from FFTTables(n) or larger.
    `out_re`, `out_im` take n/2 + 1 bins.
    """
    half = re.shape[0]
    wr = twiddles[0, half - 1 : 2 * half - 1]  # cos(2*pi*k/n)
    ws = twiddles[1, half - 1 : 2 * half - 1]  # sin(2*pi*k/n)
    out_re[0] = re[0] + im[0]
    out_im[0] = 0.0
    out_re[half] = re[0] - im[0]
    out_im[half] = 0.0
    for k in range(1, half):
        zr, zi = re[k], im[k]
        cr, ci = re[half - k], -im[half - k]  # conj(Z[n/2 - k])
        er, ei = 0.5 * (zr + cr), 0.5 * (zi + ci)  # spectrum of the even samples
        orr, oi = 0.5 * (zi - ci), -0.5 * (zr - cr)  # spectrum of the odd samples
        out_re[k] = er + wr[k] * orr + ws[k] * oi  # even + exp(-2i*pi*k/n) * odd
        out_im[k] = ei + wr[k] * oi - ws[k] * orr


@numba.njit(nogil=True, cache=True)
def merge_real_spectrum(
    spec_re: np.ndarray, spec_im: np.ndarray, twiddles: np.ndarray, re: np.ndarray, im: np.ndarray
) -> None:
    """The inverse of `split_real_spectrum`: Z (n/2 points, natural order) from bins X[0..n/2].

    X is the spectrum of a real n-point signal x; the inverse transform (sign +1, unscaled) of
    Z is n/2 * z, z[m] = x[2m] + i x[2m+1]. `twiddles` come from FFTTables(n) or larger.
    """
    half = re.shape[0]
    wr = twiddles[0, half - 1 : 2 * half - 1]  # cos(2*pi*k/n)
    ws = twiddles[1, half - 1 : 2 * half - 1]  # sin(2*pi*k/n)
    for k in range(half):
        ar, ai = spec_re[k], spec_im[k]
        br, bi = spec_re[half - k], spec_im[half - k]
        er, ei = 0.5 * (ar + br), 0.5 * (ai - bi)  # (X[k] + conj X[n/2 - k]) / 2
        dr, di = 0.5 * (ar - br), 0.5 * (ai + bi)  # (X[k] - conj X[n/2 - k]) / 2
        orr = dr * wr[k] - di * ws[k]  # odd = that * exp(2i*pi*k/n)
        oi = dr * ws[k] + di * wr[k]
        re[k] = er - oi  # Z = even + i * odd
        im[k] = ei + orr
