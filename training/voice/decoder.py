"""The DDSP decoder: scaled f0 and loudness (+ an instrument embedding) -> synth controls.

Per frame: an MLP on [f0 as MIDI/127, loudness scaled from [-100, 0] dB to [0, 1], embedding],
a GRU, an MLP on [GRU output, first MLP output], then one linear head split into overall
amplitude, harmonic distribution and noise band magnitudes, each through DDSP's exp-sigmoid.
The distribution is zeroed at and above the training Nyquist and normalised, so the outputs are
what engine/synth takes: linear peak amplitude per harmonic and linear band magnitudes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from training.voice.config import DecoderConfig

NOISE_BIAS = -5.0  # DDSP's initial bias of the noise head: start quiet
LOUDNESS_FLOOR_DB = -100.0


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0) -> torch.Tensor:
    """DDSP's scaling: max_value * sigmoid(x) ** log(exponent) + 1e-7 (positive, smooth in dB)."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + 1e-7


def scale_f0(f0_hz: torch.Tensor) -> torch.Tensor:
    """MIDI / 127 where f0 > 0, 0 for unvoiced frames."""
    midi = 69.0 + 12.0 * torch.log2(torch.clamp(f0_hz, min=1.0) / 440.0)
    return torch.where(f0_hz > 0.0, midi / 127.0, torch.zeros_like(f0_hz))


def scale_loudness(loudness_db: torch.Tensor) -> torch.Tensor:
    """[-100, 0] dB -> [0, 1]."""
    return torch.clamp((loudness_db - LOUDNESS_FLOOR_DB) / -LOUDNESS_FLOOR_DB, 0.0, 1.0)


def _mlp(in_units: int, units: int, layers: int) -> nn.Sequential:
    parts: list[nn.Module] = []
    for layer in range(layers):
        parts += [nn.Linear(in_units if layer == 0 else units, units), nn.LayerNorm(units), nn.LeakyReLU()]
    return nn.Sequential(*parts)


class Decoder(nn.Module):
    """Sequences [B, T] of f0_hz and loudness_db (+ instrument index [B]) -> controls [B, T, .]."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(len(config.instruments), config.embedding_dim)
        self.in_mlp = _mlp(2 + config.embedding_dim, config.mlp_units, config.mlp_layers)
        self.gru = nn.GRU(config.mlp_units, config.gru_units, config.gru_layers, batch_first=True)
        self.out_mlp = _mlp(config.gru_units + config.mlp_units, config.mlp_units, config.mlp_layers)
        self.head = nn.Linear(config.mlp_units, 1 + config.n_harmonics + config.n_noise_bands)
        with torch.no_grad():
            self.head.bias[1 + config.n_harmonics:] = NOISE_BIAS
        harmonic_numbers = torch.arange(1, config.n_harmonics + 1, dtype=torch.float32)
        self.register_buffer("harmonic_numbers", harmonic_numbers, persistent=False)

    def initial_state(self, batch: int) -> torch.Tensor:
        """GRU state of silence: zeros [gru_layers, batch, gru_units]."""
        return torch.zeros(self.config.gru_layers, batch, self.config.gru_units)

    def forward(
        self,
        f0_hz: torch.Tensor,
        loudness_db: torch.Tensor,
        instrument: torch.Tensor,
        state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(harmonic_amplitudes [B, T, H], noise_magnitudes [B, T, N], state [L, B, U])."""
        steps = f0_hz.shape[1]
        embedding = self.embedding(instrument).unsqueeze(1).expand(-1, steps, -1)
        inputs = torch.cat(
            [scale_f0(f0_hz).unsqueeze(-1), scale_loudness(loudness_db).unsqueeze(-1), embedding], dim=-1
        )
        hidden = self.in_mlp(inputs)
        recurrent, state = self.gru(hidden, state)
        raw = self.head(self.out_mlp(torch.cat([recurrent, hidden], dim=-1)))
        n_harmonics = self.config.n_harmonics
        amplitude = exp_sigmoid(raw[..., :1])
        distribution = exp_sigmoid(raw[..., 1 : 1 + n_harmonics])
        audible = self.harmonic_numbers * f0_hz.unsqueeze(-1) < self.config.nyquist_hz
        distribution = distribution * audible.to(distribution.dtype)
        distribution = distribution / (distribution.sum(dim=-1, keepdim=True) + 1e-7)
        noise = exp_sigmoid(raw[..., 1 + n_harmonics :])
        return amplitude * distribution, noise, state


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
