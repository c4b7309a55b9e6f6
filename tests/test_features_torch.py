"""The differentiable torch twin against the reference, and its gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.features.frames import F0, LOUDNESS, VOICING
from engine.features.reference import analyze_reference
from tests import signals
from tests.test_features_streaming import assert_features_close, melody_with_noise
from training.features_torch import analyze_torch, chroma, f0_and_voicing, loudness_db, onset_strength


@pytest.mark.parametrize("sample_rate_hz", [48000, 16000])
def test_parity_with_reference(sample_rate_hz: int) -> None:
    melody = melody_with_noise(sample_rate_hz)
    tone = signals.vibrato_tone(f0_hz=180.0, sample_rate_hz=sample_rate_hz, duration_s=len(melody) / sample_rate_hz)
    batch = torch.tensor(np.stack([melody, tone[: len(melody)]]), dtype=torch.float64)
    features = analyze_torch(batch, sample_rate_hz)
    assert features.shape == (2, len(melody) // (sample_rate_hz // 250), 16)
    for row, audio in enumerate((melody, tone[: len(melody)])):
        expected = analyze_reference(audio, sample_rate_hz).values
        assert_features_close(features[row].numpy(), expected)


def test_single_features_match_the_whole() -> None:
    audio = torch.tensor(melody_with_noise(16000)[None, :8000])
    whole = analyze_torch(audio, 16000)
    f0_hz, voicing = f0_and_voicing(audio, 16000)
    torch.testing.assert_close(f0_hz, whole[..., F0])
    torch.testing.assert_close(voicing, whole[..., VOICING])
    torch.testing.assert_close(loudness_db(audio, 16000), whole[..., LOUDNESS])
    torch.testing.assert_close(onset_strength(audio, 16000), whole[..., 3])
    torch.testing.assert_close(chroma(audio, 16000), whole[..., 4:])


def test_short_input_gives_no_frames() -> None:
    assert analyze_torch(torch.zeros(3, 40, dtype=torch.float64), 16000).shape == (3, 0, 16)


def test_loudness_gradient_reaches_the_signal() -> None:
    audio = torch.tensor(
        signals.sawtooth(f0_hz=220.0, sample_rate_hz=16000, duration_s=0.2), requires_grad=True
    )
    loudness_db(audio[None], 16000).sum().backward()
    assert torch.all(torch.isfinite(audio.grad))
    assert audio.grad.abs().sum() > 0.0


def test_f0_gradient_reaches_the_signal() -> None:
    audio = torch.tensor(
        signals.sawtooth(f0_hz=220.0, sample_rate_hz=16000, duration_s=0.2), requires_grad=True
    )
    f0_hz, voicing = f0_and_voicing(audio[None], 16000)
    assert voicing[0, 20:].min() > 0.8
    f0_hz[0, 20:].sum().backward()
    assert torch.all(torch.isfinite(audio.grad))
    assert audio.grad.abs().sum() > 0.0


def test_gradients_are_finite_on_silence_and_digital_gaps() -> None:
    notes, _ = signals.note_sequence(f0s_hz=[330.0, 440.0], sample_rate_hz=16000)
    batch = torch.tensor(np.stack([notes, np.zeros_like(notes)]), requires_grad=True)
    analyze_torch(batch, 16000).sum().backward()
    assert torch.all(torch.isfinite(batch.grad))


def test_float32_is_close_to_float64() -> None:
    audio = melody_with_noise(16000)
    f64 = analyze_torch(torch.tensor(audio[None]), 16000)[0].numpy()
    f32 = analyze_torch(torch.tensor(audio[None], dtype=torch.float32), 16000)[0].double().numpy()
    voiced = f64[:, VOICING] >= 0.6
    cents = 1200 * np.abs(np.log2(f32[voiced, F0] / f64[voiced, F0]))
    assert np.median(cents) < 0.1
    loud = f64[:, LOUDNESS] > -60.0
    np.testing.assert_allclose(f32[loud, LOUDNESS], f64[loud, LOUDNESS], atol=1e-3)
