"""FilteredNoise: band levels, level contract across rates, masking, linearity, block invariance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from engine.rates import frame_samples
from engine.synth.noise import FilteredNoise, band_response
from tests.synth_drive import BLOCK_SIZES, render_frames

N_BANDS = 65


def held_noise(
    sample_rate_hz: int, top_hz: float, magnitudes: np.ndarray, seconds: float
) -> np.ndarray:
    """`seconds` of noise with the same magnitudes every frame, the first frame's fade dropped."""
    frame = frame_samples(sample_rate_hz)
    noise = FilteredNoise(sample_rate_hz, frame, magnitudes.size, top_hz, seed=3)
    n_frames = int(seconds * 250)
    out = render_frames(noise.set_targets, noise.render, [(magnitudes,)] * n_frames, frame, 128)
    return out[frame:]


@pytest.mark.parametrize(
    "sample_rate_hz, top_hz", [(48000, 8000.0), (48000, 12000.0), (96000, 8000.0)]
)
def test_band_levels_match_the_request_and_nothing_sounds_above_the_top(
    sample_rate_hz: int, top_hz: float
) -> None:
    magnitudes = np.random.default_rng(11).uniform(0.2, 2.0, N_BANDS)
    out = held_noise(sample_rate_hz, top_hz, magnitudes, seconds=6.0)
    freqs, psd = signal.welch(out, sample_rate_hz, window="blackmanharris", nperseg=8192)
    requested = band_response(magnitudes, freqs, top_hz, top_hz) ** 2 / top_hz
    spacing = top_hz / (N_BANDS - 1)
    errors_db = []
    for band in range(1, N_BANDS - 1):  # the DC and top bands are half bands
        near = np.abs(freqs - band * spacing) <= spacing / 4
        errors_db.append(10.0 * np.log10(psd[near].mean() / requested[near].mean()))
    errors_db = np.array(errors_db)
    assert np.max(np.abs(errors_db)) < 3.0
    assert abs(np.mean(errors_db)) < 1.0
    # The response falls to 0 at top_hz; the filter's finite length adds a transition band
    # of half a band spacing. Beyond it: nothing, relative to the in-band level.
    in_band = psd[freqs < top_hz].mean()
    assert 10.0 * np.log10(psd[freqs >= top_hz + spacing / 2].max() / in_band) < -60.0


@pytest.mark.parametrize("sample_rate_hz", [48000, 96000])
@pytest.mark.parametrize("top_hz", [8000.0, 12000.0])
def test_flat_magnitude_gives_that_rms_at_any_engine_rate(
    sample_rate_hz: int, top_hz: float
) -> None:
    out = held_noise(sample_rate_hz, top_hz, np.full(N_BANDS, 0.5), seconds=3.0)
    rms = np.sqrt(np.mean(out**2))
    assert abs(20.0 * np.log10(rms / 0.5)) < 0.5


def changing_magnitudes(n_frames: int, seed: int) -> list[tuple[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.uniform(0.0, 1.5, N_BANDS) * (k % 7 != 3),) for k in range(n_frames)]


def test_any_block_size_gives_the_same_samples() -> None:
    frame = frame_samples(48000)
    targets = changing_magnitudes(120, seed=1)

    def render(block: int) -> np.ndarray:
        noise = FilteredNoise(48000, frame, N_BANDS, 8000.0, seed=5)
        return render_frames(noise.set_targets, noise.render, targets, frame, block, 130 * frame)

    one_block = render(130 * frame)
    for block in BLOCK_SIZES:
        assert np.max(np.abs(render(block) - one_block)) <= 1e-12, block
    assert np.std(one_block[-10 * frame :]) > 0.05  # held targets keep sounding


def test_it_is_a_filter_linear_in_the_magnitudes() -> None:
    """Same seed, same noise: the output for m1 + m2 is the output for m1 plus that for m2."""
    frame = frame_samples(48000)
    first = changing_magnitudes(60, seed=2)
    second = changing_magnitudes(60, seed=3)
    both = [(a + b,) for (a,), (b,) in zip(first, second)]

    def render(targets: list) -> np.ndarray:
        noise = FilteredNoise(48000, frame, N_BANDS, 8000.0, seed=9)
        return render_frames(noise.set_targets, noise.render, targets, frame, 128)

    total = render(both)
    assert np.max(np.abs(total - render(first) - render(second))) < 1e-9 * np.max(np.abs(total))


def test_power_follows_the_per_sample_ramp() -> None:
    """Flat magnitude toggling 0, 1, 0, 1 per frame: the power at sample j of a rising frame is
    ((j + 1) / F)**2, of a falling one (1 - (j + 1) / F)**2 (averaged over many frames)."""
    frame = frame_samples(48000)
    targets = [(np.full(N_BANDS, float(k % 2)),) for k in range(4000)]
    noise = FilteredNoise(48000, frame, N_BANDS, 8000.0, seed=4)
    out = render_frames(noise.set_targets, noise.render, targets, frame, 128).reshape(-1, frame)
    power = out**2
    weights = (np.arange(frame) + 1.0) / frame
    groups = (-1, 16)  # 16-sample means: ~2000 frames x 16 samples each

    def grouped(x: np.ndarray) -> np.ndarray:
        return x.reshape(groups).mean(axis=1)

    rising = power[1::2].mean(axis=0)
    falling = power[2::2].mean(axis=0)
    assert np.allclose(grouped(rising), grouped(weights**2), rtol=0.1, atol=0.005)
    assert np.allclose(grouped(falling), grouped((1.0 - weights) ** 2), rtol=0.1, atol=0.005)
    assert falling[-1] < 1e-20


def test_seed_sets_the_stream() -> None:
    frame = frame_samples(48000)
    targets = [(np.ones(N_BANDS),)] * 20

    def render(seed: int) -> np.ndarray:
        noise = FilteredNoise(48000, frame, N_BANDS, 8000.0, seed)
        return render_frames(noise.set_targets, noise.render, targets, frame, 128)

    assert np.array_equal(render(1), render(1))
    assert not np.allclose(render(1), render(2))
    noise = FilteredNoise(48000, frame, N_BANDS, 8000.0, 1)
    before = render_frames(noise.set_targets, noise.render, targets, frame, 128)
    noise.reset()
    again = render_frames(noise.set_targets, noise.render, targets, frame, 128)
    assert np.array_equal(before, again)
