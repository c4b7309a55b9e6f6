"""VoiceSynth: composition, masking at the model's Nyquist, block invariance, reset."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from engine.rates import frame_samples
from engine.synth.harmonic import HarmonicBank
from engine.synth.noise import FilteredNoise
from engine.synth.voice_synth import VoiceSynth
from tests.synth_drive import BLOCK_SIZES, render_frames

SR = 48000
F = frame_samples(SR)


def voice_targets(n_frames: int) -> list[tuple[float, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(8)
    return [  # frames 40..47 unvoiced
        (0.0 if 40 <= k < 48 else 196.0 * (1.0 + 0.01 * k),
         rng.uniform(0, 0.2, 60), rng.uniform(0, 0.05, 65))
        for k in range(n_frames)
    ]


@pytest.mark.parametrize("reverb", [False, True])
def test_any_block_size_gives_the_same_samples(reverb: bool) -> None:
    targets = voice_targets(100)

    def render(block: int) -> np.ndarray:
        voice = VoiceSynth(SR, F, 60, 65, 8000.0, reverb=reverb, seed=3)
        return render_frames(voice.set_targets, voice.render, targets, F, block, dtype=np.float32)

    one_block = render(100 * F)
    for block in BLOCK_SIZES:
        assert np.array_equal(render(block), one_block), block


def test_voice_is_the_sum_of_its_parts() -> None:
    targets = voice_targets(60)
    voice = VoiceSynth(SR, F, 60, 65, 8000.0, reverb=False, seed=3)
    bank = HarmonicBank(SR, 60, F, 8000.0)
    noise = FilteredNoise(SR, F, 65, 8000.0, seed=3)
    mixed = render_frames(voice.set_targets, voice.render, targets, F, 128)
    harmonic = render_frames(bank.set_targets, bank.render, [t[:2] for t in targets], F, 128)
    filtered = render_frames(noise.set_targets, noise.render, [t[2:] for t in targets], F, 128)
    assert np.max(np.abs(mixed - harmonic - filtered)) < 1e-12


def test_nothing_above_the_model_nyquist() -> None:
    """A 16 kHz model played at 48 kHz: harmonics and noise both stop at 8 kHz."""
    voice = VoiceSynth(SR, F, 100, 65, model_nyquist_hz=8000.0, reverb=False, seed=1)
    assert voice.max_partial_hz == 8000.0
    targets = [(440.0, np.full(100, 0.05), np.full(65, 0.1))] * 750
    out = render_frames(voice.set_targets, voice.render, targets, F, 128)[F:]
    freqs, psd = signal.welch(out, SR, window="blackmanharris", nperseg=8192)
    in_band = psd[freqs < 8000.0].mean()
    assert 10.0 * np.log10(psd[freqs > 8200.0].max() / in_band) < -60.0
    assert VoiceSynth(SR, F, 10, 65, model_nyquist_hz=30000.0).max_partial_hz == SR / 2


def test_reset_replays_identically() -> None:
    targets = voice_targets(50)
    voice = VoiceSynth(SR, F, 60, 65, 8000.0, reverb=True, seed=4)
    first = render_frames(voice.set_targets, voice.render, targets, F, 128)
    voice.reset()
    assert np.array_equal(first, render_frames(voice.set_targets, voice.render, targets, F, 128))
