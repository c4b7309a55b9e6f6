"""The baselines a trained voice must beat (DESIGN.md section 5), as synth controls per frame.

- sine: one partial at the leader's f0, at the peak amplitude of a sine with the frame's
  A-weighted power (the reference voices' level rule), no noise.
- mean spectrum: per 5 dB loudness bin, the training data's average harmonic amplitudes and
  noise band magnitudes, measured from the training audio (STFT, 64 ms Hann, hop one frame):
  a harmonic's peak amplitude is 2 |X| / sum(w) at its bin (the largest of three around h * f0);
  a band's magnitude is sqrt(E|X|^2 / sum(w^2)) (the level contract of engine/synth/noise.py:
  flat magnitude m = noise RMS m), E|X|^2 estimated by the median of the band's bins / ln 2 so
  that harmonic peaks barely count.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from training.voice.dataset import StemData

BIN_DB = 5.0
N_BINS = 20  # -100..0 dB
MEAN_SPECTRUM_FFT = 1024


def sine_controls(f0_hz: np.ndarray, loudness_db: np.ndarray, n_harmonics: int, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """([T, H] harmonic amplitudes, [T, N] noise magnitudes) of the sine voice."""
    amplitudes = np.zeros((len(f0_hz), n_harmonics), dtype=np.float32)
    amplitudes[:, 0] = 10.0 ** ((loudness_db + 3.0103) / 20.0)
    return amplitudes, np.zeros((len(f0_hz), n_bands), dtype=np.float32)


def loudness_bins(loudness_db: np.ndarray) -> np.ndarray:
    return np.clip(np.floor((loudness_db + 100.0) / BIN_DB), 0, N_BINS - 1).astype(np.int64)


class MeanSpectrum:
    """Average controls per loudness bin of one instrument's training stems."""

    def __init__(self, stems: list[StemData], sample_rate_hz: int, n_harmonics: int, n_bands: int, max_seconds: float = 600.0) -> None:
        hop = sample_rate_hz // 250
        window = torch.hann_window(MEAN_SPECTRUM_FFT, dtype=torch.float64)
        bin_hz = sample_rate_hz / MEAN_SPECTRUM_FFT
        nyquist = sample_rate_hz / 2.0
        centres = np.linspace(0.0, nyquist, n_bands)
        half = centres[1] / 2.0
        band_bins = [np.nonzero(np.abs(np.arange(MEAN_SPECTRUM_FFT // 2 + 1) * bin_hz - c) <= half)[0] for c in centres]
        harmonic_sum = np.zeros((N_BINS, n_harmonics))
        harmonic_count = np.zeros(N_BINS)
        noise_sum = np.zeros((N_BINS, n_bands))
        noise_count = np.zeros(N_BINS)
        used = 0.0
        for stem in stems:
            if used >= max_seconds:
                break
            frames = min(len(stem.f0_hz), int((max_seconds - used) * 250))
            if frames < MEAN_SPECTRUM_FFT // (sample_rate_hz // 250):
                break
            used += frames / 250.0
            audio = torch.from_numpy(stem.audio[: frames * hop].astype(np.float64))
            spectrum = torch.stft(audio, MEAN_SPECTRUM_FFT, hop, window=window, center=True, return_complex=True).abs().numpy().T
            spectrum = spectrum[:frames]
            bins = loudness_bins(stem.loudness_db[: len(spectrum)])
            power = spectrum**2
            noise = np.stack([np.median(power[:, b], axis=1) for b in band_bins], axis=1) / math.log(2.0)
            noise_mag = np.sqrt(noise / float((window**2).sum()))
            np.add.at(noise_sum, bins, noise_mag)
            np.add.at(noise_count, bins, 1.0)
            f0 = stem.f0_hz[: len(spectrum)]
            voiced = np.nonzero(f0 > 0)[0]
            if len(voiced):
                h = np.arange(1, n_harmonics + 1)
                freqs = f0[voiced, None] * h
                centre_bin = np.rint(freqs / bin_hz).astype(np.int64)
                peak = np.zeros_like(freqs)
                for offset in (-1, 0, 1):
                    index = np.clip(centre_bin + offset, 0, spectrum.shape[1] - 1)
                    peak = np.maximum(peak, np.take_along_axis(spectrum[voiced], index, axis=1))
                amps = np.where(freqs < nyquist, 2.0 * peak / float(window.sum()), 0.0)
                np.add.at(harmonic_sum, bins[voiced], amps)
                np.add.at(harmonic_count, bins[voiced], 1.0)
        self.harmonics = self._fill(harmonic_sum, harmonic_count)
        self.noise = self._fill(noise_sum, noise_count)

    @staticmethod
    def _fill(total: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Means per bin; an empty bin takes its nearest non-empty bin's mean (zeros if none)."""
        filled = np.zeros_like(total)
        present = np.nonzero(count > 0)[0]
        if len(present) == 0:
            return filled
        for b in range(len(count)):
            nearest = present[np.argmin(np.abs(present - b))]
            filled[b] = total[nearest] / count[nearest]
        return filled.astype(np.float32)

    def controls(self, loudness_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bins = loudness_bins(loudness_db)
        return self.harmonics[bins], self.noise[bins]
