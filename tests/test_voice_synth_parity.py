"""The torch synth of training/voice matches engine/synth, dry: the harmonic part by waveform
(difference under -60 dB), the noise by per-band energy (within 0.5 dB)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from engine.synth.harmonic import HarmonicBank
from engine.synth.noise import FilteredNoise
from tests.synth_drive import render_frames
from training.voice.synth import band_matrix, filtered_noise, harmonic_synth

RATE, FRAME = 16000, 64


def _db(x: np.ndarray) -> float:
    return 10.0 * np.log10(np.mean(np.square(x)) + 1e-30)


def _melody(n_frames: int, n_harmonics: int) -> tuple[np.ndarray, np.ndarray]:
    """A gliding f0 with two unvoiced gaps, amplitudes varying per frame and harmonic."""
    rng = np.random.default_rng(3)
    t = np.arange(n_frames)
    f0 = 220.0 * 2.0 ** (np.sin(t / 40.0) + (t > n_frames // 2))  # a glide and an octave jump
    f0[30:42] = 0.0
    f0[150:153] = 0.0
    amps = 0.3 * rng.uniform(0.2, 1.0, (n_frames, n_harmonics)) / np.arange(1, n_harmonics + 1)
    return f0, amps


def test_harmonic_waveform_matches_engine_bank() -> None:
    n_frames, n_harmonics = 250, 40
    f0, amps = _melody(n_frames, n_harmonics)
    bank = HarmonicBank(RATE, n_harmonics, FRAME, RATE / 2)
    engine = render_frames(bank.set_targets, bank.render, list(zip(f0, amps)), FRAME, 128)
    ours = harmonic_synth(
        torch.tensor(f0)[None], torch.tensor(amps)[None], RATE, FRAME, RATE / 2
    )[0].numpy()
    assert _db(engine) > -30.0  # a real signal, with both gaps and the Nyquist mask at work
    assert _db(ours - engine) - _db(engine) < -60.0
    shifted = harmonic_synth(torch.tensor(f0 * 1.01)[None], torch.tensor(amps)[None], RATE, FRAME, RATE / 2)[0].numpy()
    assert _db(shifted - engine) - _db(engine) > -20.0  # the comparison can tell a 17-cent error


def _band_energies_db(audio: np.ndarray, n_bands: int) -> np.ndarray:
    """Energy in dB between the midpoints around each inner band centre."""
    freqs, psd = scipy.signal.welch(audio, RATE, nperseg=1024)
    centres = np.linspace(0.0, RATE / 2, n_bands)
    half = centres[1] / 2
    return np.array([
        10 * np.log10(psd[(freqs >= c - half) & (freqs < c + half)].sum()) for c in centres[1:-1]
    ])


@pytest.mark.parametrize("n_bands", [17, 65])
def test_noise_band_energy_matches_engine_filter(n_bands: int) -> None:
    seconds = 12
    n_frames = seconds * RATE // FRAME
    centres = np.linspace(0.0, 1.0, n_bands)
    magnitudes = 0.05 * (0.2 + np.abs(np.sin(7.0 * centres))) # a shaped, non-flat spectrum
    noise = FilteredNoise(RATE, FRAME, n_bands, RATE / 2, seed=5)
    engine = render_frames(noise.set_targets, noise.render, [(magnitudes,)] * n_frames, FRAME, 128)
    generator = torch.Generator().manual_seed(5)
    white = (torch.rand(1, n_frames * FRAME, generator=generator, dtype=torch.float64) * 2 - 1) * np.sqrt(3.0)
    ours = filtered_noise(
        torch.tensor(magnitudes)[None, None].expand(1, n_frames, n_bands),
        white, band_matrix(n_bands, RATE, FRAME, RATE / 2).double(), FRAME,
    )[0].numpy()
    skip = RATE // 2  # the engine starts from silence: compare the steady part
    difference = _band_energies_db(ours[skip:], n_bands) - _band_energies_db(engine[skip:], n_bands)
    assert np.max(np.abs(difference)) < 0.5, difference
    assert abs(_db(ours[skip:]) - _db(engine[skip:])) < 0.2
