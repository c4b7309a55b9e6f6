"""Multi-scale spectral loss (DESIGN.md section 5): L1 on magnitude plus L1 on log magnitude,
FFT sizes 2048 down to 64, hop a quarter of the size (75 % overlap), Hann window."""

from __future__ import annotations

import torch

LOG_EPS = 1e-7


def multiscale_spectral_loss(
    output: torch.Tensor, target: torch.Tensor, fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64)
) -> torch.Tensor:
    """Per-example loss [B] between audio [B, N] signals (sum over scales of the two means)."""
    total = torch.zeros(output.shape[0], dtype=output.dtype, device=output.device)
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft, dtype=output.dtype, device=output.device)
        spectra = [
            torch.stft(x, n_fft, n_fft // 4, window=window, center=True, return_complex=True).abs()
            for x in (output, target)
        ]
        difference = (spectra[0] - spectra[1]).abs().mean(dim=(1, 2))
        log_difference = (torch.log(spectra[0] + LOG_EPS) - torch.log(spectra[1] + LOG_EPS)).abs().mean(dim=(1, 2))
        total = total + difference + log_difference
    return total
