"""Feature analysis v1, the differentiable torch twin of `engine/features/reference.py`.

Same definitions, sizes and bin tables (imported from the reference), batched: audio [B, T]
gives [B, n_frames] (or [B, n_frames, 12] for chroma), n_frames = T // hop, in the audio's dtype
and device. Loudness, onset and chroma are smooth functions of the signal. For f0 the choice of
the integer lag (YIN's threshold and dip search) is discrete, but the parabolic refinement and
the voicing are computed from the difference function, so gradients reach the signal.
The YIN difference function comes from FFTs, d = e_now + e_lag - 2 r, like the numba twin; in
float32 its rounding floor rises to 100 eps (`rounding_floor`).
"""

from __future__ import annotations

import numpy as np
import torch

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


def _table(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device)


def causal_frames(audio: torch.Tensor, hop: int, length: int) -> torch.Tensor:
    """[B, T // hop, length] windows, frame i ending at sample (i+1)*hop - 1, zeros before 0."""
    usable = audio[..., : audio.shape[-1] // hop * hop]
    if usable.shape[-1] == 0:
        return audio.new_zeros(audio.shape[:-1] + (0, length))
    return torch.nn.functional.pad(usable, (length - hop, 0)).unfold(-1, length, hop)


def power_spectra(audio: torch.Tensor, hop: int, window: int, n_fft: int) -> torch.Tensor:
    """[B, n_frames, n_fft/2+1] |X_k|^2 of each frame's last `window` samples, periodic Hann."""
    frames = causal_frames(audio, hop, window) * _table(hann(window), audio)
    if frames.shape[-2] == 0:  # some FFT backends refuse empty batches
        return frames.new_zeros(frames.shape[:-1] + (n_fft // 2 + 1,))
    spectrum = torch.fft.rfft(frames, n=n_fft)
    return spectrum.real**2 + spectrum.imag**2


def loudness_from_power(power: torch.Tensor, sizes: AnalysisSizes) -> torch.Tensor:
    """A-weighted power in dB per frame from the loudness window's |X_k|^2, floor -100 dB."""
    weighted = power @ _table(loudness_bin_weights(sizes), power)
    return 10.0 * torch.log10(torch.clamp(weighted, min=power_floor(LOUDNESS_FLOOR_DB)))


def onset_from_power(power: torch.Tensor, sizes: AnalysisSizes) -> torch.Tensor:
    """Spectral flux per frame from the loudness window's |X_k|^2 (frame -1 is silent)."""
    n_bins = onset_bin_count(sizes)
    band = power[..., :n_bins]
    # sqrt has an infinite slope at 0: pass a zero gradient for empty bins instead of NaN.
    safe = torch.where(band > 0.0, band, torch.ones_like(band))
    magnitude = torch.where(band > 0.0, torch.sqrt(safe), torch.zeros_like(band))
    level = torch.log1p(ONSET_GAMMA * onset_magnitude_scale(sizes) * magnitude)
    previous = torch.nn.functional.pad(level[..., :-1, :], (0, 0, 1, 0))
    return torch.clamp(level - previous, min=0.0).sum(-1) / n_bins


def chroma_from_power(power: torch.Tensor, sizes: AnalysisSizes) -> torch.Tensor:
    """[B, n_frames, 12] normalised pitch-class energy from the chroma window's |X_k|^2."""
    classes = chroma_bin_classes(sizes)
    one_hot = np.zeros((len(classes), 12))
    one_hot[classes >= 0, classes[classes >= 0]] = 1.0
    totals = power @ _table(one_hot, power)
    band = totals.sum(-1, keepdim=True)
    audible = band * chroma_power_scale(sizes) >= power_floor(CHROMA_FLOOR_DB)
    safe_band = torch.where(audible, band, torch.ones_like(band))
    return torch.where(audible, totals / safe_band, torch.zeros_like(totals))


def rounding_floor(dtype: torch.dtype) -> float:
    """The reference's YIN_ROUNDING_FLOOR, raised to 100 eps where the dtype is coarser."""
    return max(YIN_ROUNDING_FLOOR, 100.0 * torch.finfo(dtype).eps)


def yin_difference(audio: torch.Tensor, sizes: AnalysisSizes) -> torch.Tensor:
    """[B, n_frames, tau_max + 2] YIN difference function d(tau) of every frame."""
    window, tau_max = sizes.yin_window, sizes.tau_max
    span = causal_frames(audio, sizes.frame_samples, sizes.yin_span)
    if span.shape[-2] == 0:
        return span.new_zeros(span.shape[:-1] + (tau_max + 2,))
    length = span.shape[-1]
    n_fft = next_pow2(length)
    now = span[..., length - window :]
    cross = torch.fft.irfft(
        torch.fft.rfft(span, n=n_fft) * torch.conj(torch.fft.rfft(now, n=n_fft)), n=n_fft
    )
    # The lagged window for tau starts at u = length - window - tau: tau = 1..tau_max+1.
    starts = torch.arange(length - window - 1, -1, -1, device=audio.device)
    energy = torch.nn.functional.pad(torch.cumsum(span**2, -1), (1, 0))
    lag_energy = energy[..., starts + window] - energy[..., starts]
    now_energy = energy[..., -1:] - energy[..., length - window : length - window + 1]
    d = now_energy + lag_energy - 2.0 * cross[..., starts]
    floor = rounding_floor(audio.dtype) * energy[..., -1:]
    d = torch.where(d > floor, d, torch.zeros_like(d))
    return torch.nn.functional.pad(d, (1, 0))


def cumulative_mean_normalized(d: torch.Tensor) -> torch.Tensor:
    """YIN's cmnd along the last axis: d * tau / cumsum(d), 1 at tau 0 and where the sum is 0."""
    cumulative = torch.cumsum(d, -1)
    taus = torch.arange(d.shape[-1], device=d.device, dtype=d.dtype)
    defined = (cumulative > 0.0) & (taus > 0)
    safe = torch.where(defined, cumulative, torch.ones_like(cumulative))
    return torch.where(defined, d * taus / safe, torch.ones_like(d))


def yin_pick(cmnd: torch.Tensor, tau_min: int, tau_max: int) -> torch.Tensor:
    """Integer lag per frame: the reference's `yin_pick` (lowest point of the first dip)."""
    searched = cmnd.detach()[..., tau_min : tau_max + 1]
    below = searched < YIN_THRESHOLD
    start = torch.argmax(below.to(torch.int8), -1, keepdim=True)
    index = torch.arange(searched.shape[-1], device=cmnd.device)
    after = index >= start
    dip = below & after & (torch.cumsum((~below & after).to(torch.int64), -1) == 0)
    in_dip = torch.argmin(torch.where(dip, searched, torch.full_like(searched, np.inf)), -1)
    best = torch.where(below.any(-1), in_dip, torch.argmin(searched, -1))
    return tau_min + best


def f0_and_voicing(
    audio: torch.Tensor,
    sample_rate_hz: int,
    *,
    f0_min_hz: float = F0_MIN_HZ,
    f0_max_hz: float = F0_MAX_HZ,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(f0_hz, voicing), each [B, n_frames], by the reference's causal YIN."""
    sizes = analysis_sizes(sample_rate_hz, f0_min_hz, f0_max_hz)
    d = yin_difference(audio, sizes)
    cmnd = cumulative_mean_normalized(d)
    tau = yin_pick(cmnd, sizes.tau_min, sizes.tau_max)
    h = torch.clamp(
        torch.minimum(torch.minimum((tau + 32) // 64, sizes.tau_max + 1 - tau), tau - 1), min=1
    )
    before = torch.gather(d, -1, (tau - h).unsqueeze(-1)).squeeze(-1)
    at = torch.gather(d, -1, tau.unsqueeze(-1)).squeeze(-1)
    after = torch.gather(d, -1, (tau + h).unsqueeze(-1)).squeeze(-1)
    curvature = before - 2.0 * at + after
    convex = curvature > 0.0
    safe = torch.where(convex, curvature, torch.ones_like(curvature))
    shift = torch.where(
        convex, torch.clamp(0.5 * (before - after) / safe, -1.0, 1.0), torch.zeros_like(safe)
    )
    f0_hz = sample_rate_hz / (tau.to(d.dtype) + h.to(d.dtype) * shift)
    cmnd_at = torch.gather(cmnd, -1, tau.unsqueeze(-1)).squeeze(-1)
    voicing = torch.clamp(1.0 - cmnd_at / (2.0 * YIN_THRESHOLD), 0.0, 1.0)
    return f0_hz, voicing


def loudness_db(audio: torch.Tensor, sample_rate_hz: int) -> torch.Tensor:
    """[B, n_frames] A-weighted loudness in dB, floor -100 dB."""
    sizes = analysis_sizes(sample_rate_hz)
    power = power_spectra(audio, sizes.frame_samples, sizes.loudness_window, sizes.loudness_fft)
    return loudness_from_power(power, sizes)


def onset_strength(audio: torch.Tensor, sample_rate_hz: int) -> torch.Tensor:
    """[B, n_frames] spectral-flux onset strength."""
    sizes = analysis_sizes(sample_rate_hz)
    power = power_spectra(audio, sizes.frame_samples, sizes.loudness_window, sizes.loudness_fft)
    return onset_from_power(power, sizes)


def chroma(audio: torch.Tensor, sample_rate_hz: int) -> torch.Tensor:
    """[B, n_frames, 12] chroma, rows summing to 1 or all zero."""
    sizes = analysis_sizes(sample_rate_hz)
    power = power_spectra(audio, sizes.frame_samples, sizes.chroma_window, sizes.chroma_fft)
    return chroma_from_power(power, sizes)


def analyze_torch(
    audio: torch.Tensor,
    sample_rate_hz: int,
    *,
    f0_min_hz: float = F0_MIN_HZ,
    f0_max_hz: float = F0_MAX_HZ,
) -> torch.Tensor:
    """[B, n_frames, N_FEATURES] features v1 in FEATURE_NAMES order, as `analyze_reference`."""
    sizes = analysis_sizes(sample_rate_hz, f0_min_hz, f0_max_hz)
    hop = sizes.frame_samples
    f0_hz, voicing = f0_and_voicing(
        audio, sample_rate_hz, f0_min_hz=f0_min_hz, f0_max_hz=f0_max_hz
    )
    loud_power = power_spectra(audio, hop, sizes.loudness_window, sizes.loudness_fft)
    chroma_power = power_spectra(audio, hop, sizes.chroma_window, sizes.chroma_fft)
    return torch.cat(
        [
            f0_hz.unsqueeze(-1),
            voicing.unsqueeze(-1),
            loudness_from_power(loud_power, sizes).unsqueeze(-1),
            onset_from_power(loud_power, sizes).unsqueeze(-1),
            chroma_from_power(chroma_power, sizes),
        ],
        dim=-1,
    )
