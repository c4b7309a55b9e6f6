"""The engine's dry synth (engine/synth) in torch, for training: same controls, same sound.

Harmonic part: the ramp contract of engine/synth/ramp.py (frame k's targets reached at its last
sample, weight (j + 1) / F), the bank's unvoiced rule (an unvoiced frame fades out at the held
pitch; a silent bank starts at its target f0), one fundamental phase accumulated per sample in
float64, partials at or above `max_partial_hz` zeroed. Noise: white noise shaped in the STFT
domain (hop = one frame, FFT = 4 frames, Hann) by `engine.synth.band_response` of the band
magnitudes, at the engine's level contract (one-sided PSD = response**2 / top_hz). The engine
filters the same response in the time domain; the parity test compares per-band energy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.synth.noise import band_response


def _forward_fill(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """values[b, t] where keep, else the last kept value before t (0 before the first)."""
    steps = values.shape[1]
    index = torch.where(keep, torch.arange(steps, device=values.device), torch.full_like(keep, -1, dtype=torch.long))
    index = torch.cummax(index, dim=1).values + 1
    padded = torch.cat([torch.zeros_like(values[:, :1]), values], dim=1)
    return torch.gather(padded, 1, index)


def _ramp(start: torch.Tensor, target: torch.Tensor, frame_samples: int) -> torch.Tensor:
    """Per-sample values [B, T * F, ...] from per-frame start and target [B, T, ...]."""
    weight = torch.arange(1, frame_samples + 1, dtype=target.dtype, device=target.device) / frame_samples
    shape = (1, 1, frame_samples) + (1,) * (target.dim() - 2)
    values = start.unsqueeze(2) + (target - start).unsqueeze(2) * weight.view(shape)
    return values.reshape(target.shape[0], -1, *target.shape[2:])


def harmonic_controls(
    f0_hz: torch.Tensor, amplitudes: torch.Tensor, frame_samples: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample f0 [B, N] (float64) and amplitudes [B, N, H] as engine/synth's bank ramps them."""
    voiced = f0_hz > 0.0
    f0 = f0_hz.to(torch.float64)
    target_f0 = _forward_fill(f0, voiced)
    target_amps = amplitudes * voiced.unsqueeze(-1).to(amplitudes.dtype)
    previous_amps = torch.cat([torch.zeros_like(target_amps[:, :1]), target_amps[:, :-1]], dim=1)
    previous_f0 = torch.cat([torch.zeros_like(target_f0[:, :1]), target_f0[:, :-1]], dim=1)
    silent = (previous_amps == 0.0).all(dim=-1)
    start_f0 = torch.where(silent | (previous_f0 <= 0.0), target_f0, previous_f0)
    return _ramp(start_f0, target_f0, frame_samples), _ramp(previous_amps, target_amps, frame_samples)


def harmonic_synth(
    f0_hz: torch.Tensor,
    amplitudes: torch.Tensor,
    sample_rate_hz: int,
    frame_samples: int,
    max_partial_hz: float,
) -> torch.Tensor:
    """[B, T * F] audio from f0 [B, T] in Hz and linear peak amplitudes [B, T, H]."""
    f0, amps = harmonic_controls(f0_hz, amplitudes, frame_samples)
    limit = min(float(max_partial_hz), sample_rate_hz / 2.0)
    theta = torch.cumsum(2.0 * math.pi * torch.clamp(f0, min=0.0) / sample_rate_hz, dim=1)
    theta = torch.remainder(theta, 2.0 * math.pi).to(amps.dtype)
    harmonics = torch.arange(1, amps.shape[-1] + 1, dtype=amps.dtype, device=amps.device)
    audible = (harmonics * f0.unsqueeze(-1).to(amps.dtype) < limit) & (f0.unsqueeze(-1) > 0.0)
    partials = torch.sin(theta.unsqueeze(-1) * harmonics) * audible.to(amps.dtype)
    return torch.sum(amps * partials, dim=-1)


def noise_fft_size(frame_samples: int) -> int:
    return 4 * frame_samples


def band_matrix(n_bands: int, sample_rate_hz: int, frame_samples: int, top_hz: float) -> torch.Tensor:
    """[n_bands, n_bins]: the STFT gain of each unit band magnitude under the level contract."""
    n_fft = noise_fft_size(frame_samples)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
    limit = min(top_hz, sample_rate_hz / 2.0)
    gain = math.sqrt(sample_rate_hz / (2.0 * top_hz))
    rows = []
    for band in range(n_bands):
        unit = np.zeros(n_bands)
        unit[band] = 1.0
        rows.append(gain * band_response(unit, bins, top_hz, limit))
    return torch.tensor(np.array(rows), dtype=torch.float32)


def filtered_noise(
    magnitudes: torch.Tensor, white: torch.Tensor, bands: torch.Tensor, frame_samples: int
) -> torch.Tensor:
    """[B, T * F] noise from band magnitudes [B, T, N] and unit-variance white noise [B, T * F].

    STFT frame t is centred on sample t * F, where the engine's ramp sits at frame t - 1's
    target; frame 0 starts silent, as a reset synth does.
    """
    n_fft = noise_fft_size(frame_samples)
    window = torch.hann_window(n_fft, dtype=white.dtype, device=white.device)
    spectrum = torch.stft(white, n_fft, frame_samples, window=window, center=True, return_complex=True)
    gains = magnitudes @ bands.to(magnitudes.dtype)
    gains = torch.cat([torch.zeros_like(gains[:, :1]), gains], dim=1).transpose(1, 2)
    return torch.istft(spectrum * gains, n_fft, frame_samples, window=window, center=True, length=white.shape[1])


class TorchSynth(torch.nn.Module):
    """Harmonic + filtered noise at the training rate (`top_hz` = the training Nyquist)."""

    def __init__(self, sample_rate_hz: int, frame_samples: int, n_noise_bands: int) -> None:
        super().__init__()
        self.sample_rate_hz = sample_rate_hz
        self.frame_samples = frame_samples
        self.top_hz = sample_rate_hz / 2.0
        self.register_buffer("bands", band_matrix(n_noise_bands, sample_rate_hz, frame_samples, self.top_hz), persistent=False)

    def forward(
        self, f0_hz: torch.Tensor, amplitudes: torch.Tensor, magnitudes: torch.Tensor, white: torch.Tensor
    ) -> torch.Tensor:
        harmonic = harmonic_synth(f0_hz, amplitudes, self.sample_rate_hz, self.frame_samples, self.top_hz)
        return harmonic + filtered_noise(magnitudes, white, self.bands, self.frame_samples)


def white_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Unit-variance uniform white noise (the engine's distribution), from `generator`."""
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * math.sqrt(3.0)
