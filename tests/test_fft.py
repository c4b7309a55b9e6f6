"""The shared in-place FFT kernels (`engine.fft`) against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from engine.fft import FFTTables, fft_dif, fft_dit, merge_real_spectrum, split_real_spectrum


@pytest.mark.parametrize("n", [8, 64, 1024])
def test_fft_kernels_match_numpy(n: int) -> None:
    tables = FFTTables(n)
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    re, im = x.real[tables.bitrev].copy(), x.imag[tables.bitrev].copy()
    fft_dit(re, im, tables.twiddles, -1.0)
    assert np.allclose(re + 1j * im, np.fft.fft(x))
    re, im = x.real.copy(), x.imag.copy()
    fft_dif(re, im, tables.twiddles, 1.0)
    assert np.allclose((re + 1j * im)[tables.bitrev], n * np.fft.ifft(x))
    real = rng.standard_normal(n)
    re, im = real[0::2][tables.bitrev_half].copy(), real[1::2][tables.bitrev_half].copy()
    fft_dit(re, im, tables.twiddles, -1.0)
    spectrum_re, spectrum_im = np.zeros(n // 2 + 1), np.zeros(n // 2 + 1)
    split_real_spectrum(re, im, tables.twiddles, spectrum_re, spectrum_im)
    assert np.allclose(spectrum_re + 1j * spectrum_im, np.fft.rfft(real))


@pytest.mark.parametrize("n", [8, 64, 1024])
def test_real_inverse_round_trip(n: int) -> None:
    """merge_real_spectrum + fft_dif(+1) inverts a real spectrum: n/2 * (x[2m] + i x[2m+1])."""
    tables = FFTTables(n)
    spectrum = np.fft.rfft(np.random.default_rng(n).standard_normal(n))
    expected = np.fft.irfft(spectrum, n)
    re, im = np.zeros(n // 2), np.zeros(n // 2)
    merge_real_spectrum(spectrum.real.copy(), spectrum.imag.copy(), tables.twiddles, re, im)
    fft_dif(re, im, tables.twiddles, 1.0)
    half = n // 2
    np.testing.assert_allclose(re[tables.bitrev_half] / half, expected[0::2], atol=1e-12)
    np.testing.assert_allclose(im[tables.bitrev_half] / half, expected[1::2], atol=1e-12)
