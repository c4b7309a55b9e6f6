"""Evaluation in musical units: the metrics read a stem's own audio as perfect, the baselines
render what they promise, and the report names the data it lacked."""

from __future__ import annotations

import numpy as np

from engine.features.streaming import StreamingAnalyzer
from training.voice.baselines import MeanSpectrum, sine_controls
from training.voice.evaluate import evaluate_instrument, frame_metrics
from tests.voice_models import synthetic_stems, tiny_decoder


def test_a_stem_measured_against_itself_is_perfect() -> None:
    stem = synthetic_stems()[0]
    metrics = frame_metrics(stem, stem.audio, StreamingAnalyzer(16000), pitched=True)
    assert metrics["lag_frames"] == 0
    assert metrics["loud_abs_sum"] / metrics["loud_frames"] < 0.01
    cents = np.array(metrics["cents"])
    assert np.mean(cents <= 20.0) > 0.97  # the few misses are the frames around note changes


def test_mean_spectrum_recovers_a_known_harmonic_recipe() -> None:
    stem = synthetic_stems()[1]  # harmonics 1/h**2 at 0.2 * (0.6 .. 1.0)
    mean = MeanSpectrum([stem], 16000, 12, 17)
    voiced_loud = stem.loudness_db[stem.f0_hz > 0]
    amps, _ = mean.controls(np.array([np.median(voiced_loud)]))
    ratios = amps[0, :4] / amps[0, 0]
    np.testing.assert_allclose(ratios, 1.0 / np.arange(1, 5) ** 2, rtol=0.15)
    assert 0.08 < amps[0, 0] < 0.25
    sine, noise = sine_controls(np.array([440.0]), np.array([-23.0103]), 5, 3)
    assert sine[0, 0] == np.float32(10 ** (-20 / 20)) and np.all(sine[0, 1:] == 0) and np.all(noise == 0)


def test_instrument_report_compares_model_with_both_baselines(tmp_path) -> None:
    stems = synthetic_stems()
    row = evaluate_instrument(tiny_decoder(), 1, [stems[1]], [stems[1]], plot=tmp_path / "strings.png")
    for system in ("model", "sine", "mean_spectrum"):
        assert row[system]["spectral_distance"] > 0
        assert 0.0 <= row[system]["f0_within_20_cents"] <= 1.0
    # A measured mean spectrum of the very stem beats a bare sine on it, by a wide margin.
    assert row["mean_spectrum"]["spectral_distance"] < 0.8 * row["sine"]["spectral_distance"]
    assert row["sine"]["f0_within_20_cents"] > 0.9  # the sine plays the input f0, re-extracted
    assert (tmp_path / "strings.png").stat().st_size > 10000
