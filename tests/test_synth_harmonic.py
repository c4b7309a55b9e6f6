"""HarmonicBank: analytic tones, block invariance, the numpy reference, masking, voicing, clicks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from engine.rates import frame_samples
from engine.synth.harmonic import HarmonicBank, harmonic_reference
from tests.synth_drive import BLOCK_SIZES, ramp_per_sample, render_frames

SR = 48000
F = frame_samples(SR)


def analytic_tone(f0_hz: float, amplitudes: np.ndarray, n: int) -> np.ndarray:
    """sum_h a_h sin(h * 2*pi*f0*(n+1)/sr): theta advances before the first sample is output."""
    theta = 2.0 * np.pi * f0_hz * (np.arange(n) + 1.0) / SR
    h = np.arange(1, amplitudes.size + 1)
    return np.sin(theta[:, None] * h[None, :]) @ amplitudes


@pytest.mark.parametrize("block", BLOCK_SIZES)
def test_steady_tone_equals_its_sinusoids_for_any_block_size(block: int) -> None:
    amplitudes = np.array([0.5, 0.3, 0.2, 0.1, 0.05])
    bank = HarmonicBank(SR, amplitudes.size, F, max_partial_hz=8000.0)
    out = render_frames(bank.set_targets, bank.render, [(220.0, amplitudes)], F, block, SR)
    expected = analytic_tone(220.0, amplitudes, SR)
    # The first frame ramps the amplitudes up from 0; from then on the tone is exact.
    assert np.max(np.abs(out[F:] - expected[F:])) < 1e-5
    assert np.max(np.abs(out[:F])) > 0.0


def sweep_targets(n_frames: int, n_harmonics: int) -> list[tuple[float, np.ndarray]]:
    """A glide 150 -> 1200 Hz with vibrato and new random amplitudes every frame."""
    rng = np.random.default_rng(7)
    t = np.arange(n_frames) / 250.0
    vibrato = 1.0 + 0.02 * np.sin(2 * np.pi * 5.0 * t)
    f0 = 150.0 * 8.0 ** (np.arange(n_frames) / n_frames) * vibrato
    rolloff = 1.0 / np.arange(1, n_harmonics + 1)
    return [(float(f), rng.uniform(0.0, 1.0, n_harmonics) * rolloff) for f in f0]


def test_sweep_is_block_invariant_and_matches_the_reference() -> None:
    n_harmonics, limit = 30, 9000.0  # upper partials cross the limit during the glide
    targets = sweep_targets(400, n_harmonics)

    def render(block: int) -> np.ndarray:
        bank = HarmonicBank(SR, n_harmonics, F, limit)
        return render_frames(bank.set_targets, bank.render, targets, F, block)

    one_block = render(400 * F)
    for block in BLOCK_SIZES:
        assert np.max(np.abs(render(block) - one_block)) <= 1e-12, block
    f0_frames = np.array([[f] for f, _ in targets])
    amp_frames = np.array([a for _, a in targets])
    # A silent bank starts at the first f0 (no glide up from 0 Hz); amplitudes start at 0.
    f0 = ramp_per_sample(f0_frames, F, f0_frames[0])[:, 0]
    amps = ramp_per_sample(amp_frames, F, np.zeros(n_harmonics))
    reference = harmonic_reference(f0, amps, SR, limit)
    assert np.max(np.abs(one_block - reference)) < 1e-6
    assert np.std(reference) > 0.1


def test_partials_at_or_above_the_limit_are_silent() -> None:
    n_harmonics = 40
    bank = HarmonicBank(SR, n_harmonics, F, max_partial_hz=8000.0)
    amplitudes = 1.0 / np.arange(1, n_harmonics + 1)
    out = render_frames(bank.set_targets, bank.render, [(1000.0, amplitudes)], F, 128, 4 * SR)
    freqs, psd = signal.welch(out, SR, window="blackmanharris", nperseg=8192)
    above = psd[freqs > 8200.0].sum() / psd.sum()
    assert 10.0 * np.log10(above) < -80.0
    seventh = psd[np.abs(freqs - 7000.0) < 20.0].sum() / psd.sum()  # h=7 (7 kHz) still plays
    assert 10.0 * np.log10(seventh) > -30.0
    assert HarmonicBank(SR, n_harmonics, F, max_partial_hz=30000.0).max_partial_hz == SR / 2


@pytest.mark.parametrize("unvoiced", ["f0_zero", "amplitudes_zero"])
def test_voicing_drop_reaches_exact_silence_within_one_frame(unvoiced: str) -> None:
    amplitudes = np.array([0.6, 0.3, 0.15])
    drop = 50
    off = (0.0, amplitudes) if unvoiced == "f0_zero" else (220.0, np.zeros(3))
    targets = [(220.0, amplitudes)] * drop + [off] * 20
    bank = HarmonicBank(SR, amplitudes.size, F, 8000.0)
    out = render_frames(bank.set_targets, bank.render, targets, F, 128)
    bank.reset()
    held = render_frames(bank.set_targets, bank.render, targets[:drop], F, 128, len(targets) * F)
    fade = out[drop * F : (drop + 1) * F]
    after = out[(drop + 1) * F :]
    # The fade is the held tone (same pitch and phase) times a linear ramp down to 0.
    weights = 1.0 - (np.arange(F) + 1.0) / F
    assert np.max(np.abs(fade - held[drop * F : (drop + 1) * F] * weights)) < 1e-12
    assert np.max(np.abs(fade[: F // 2])) > 0.05
    assert np.mean(np.abs(after)) == 0.0  # exactly silent: no DC, no residue
    assert np.max(np.abs(out[: drop * F] - held[: drop * F])) == 0.0


def test_no_clicks_at_block_or_frame_edges() -> None:
    amplitudes = np.array([0.5, 0.25, 0.12, 0.06])
    n_frames = 500
    bank = HarmonicBank(SR, amplitudes.size, F, 8000.0)
    out = render_frames(bank.set_targets, bank.render, [(220.0, amplitudes)] * n_frames, F, 128)
    steady = out[F:]
    curvature = np.zeros_like(steady)
    curvature[1:-1] = (steady[2:] - 2.0 * steady[1:-1] + steady[:-2]) ** 2
    index = np.arange(F, out.size)
    edges = (index % 128 <= 1) | (index % 128 == 127) | (index % F <= 1) | (index % F == F - 1)
    edges[[0, -1]] = False
    interior = ~edges
    interior[[0, -1]] = False
    ratio_db = 10.0 * np.log10(curvature[edges].mean() / curvature[interior].mean())
    assert abs(ratio_db) < 1.0


def test_reset_restarts_phase_and_silence() -> None:
    amplitudes = np.array([0.5, 0.2])
    targets = [(330.0, amplitudes)] * 10
    bank = HarmonicBank(SR, 2, F, 8000.0)
    first = render_frames(bank.set_targets, bank.render, targets, F, 100)
    bank.reset()
    again = render_frames(bank.set_targets, bank.render, targets, F, 100)
    assert np.array_equal(first, again)
    bank.reset()
    silent = np.zeros(500)
    bank.render(silent, 0, 500)
    assert not silent.any()


def test_float32_output_accumulates() -> None:
    bank = HarmonicBank(SR, 3, F, 8000.0)
    out = np.full(2 * F, 0.25, dtype=np.float32)
    bank.set_targets(440.0, np.array([0.5, 0.0, 0.0]))
    bank.render(out, 0, 2 * F)
    expected = 0.25 + analytic_tone(440.0, np.array([0.5]), 2 * F)
    assert np.max(np.abs(out[F:] - expected[F:])) < 1e-6
