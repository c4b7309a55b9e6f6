"""The conductor network and the non-causal, loudness-only baseline it is judged against.

`Conductor`: input steps -> a linear embedding plus learned positions -> a pre-norm Transformer
encoder with a causal mask (step k attends to steps <= k only) -> per step, HORIZON_BINS bins
of the contract's output fields (logits, scaled loudness, scaled register). Every step is
trained on its own future, so one window gives CONTEXT_STEPS examples; live, only the last
step's prediction is used (`LastStep`, the exported graph).

`LoudnessBaseline`: the original design's conductor: a 6-layer encoder without a mask over
the leader's loudness curve alone, predicting each role's loudness; it reads the future, so
it can only run offline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from engine.conductor.contract import CONTEXT_STEPS, HORIZON_BINS, OUTPUT_WIDTH, ROLES
from engine.conductor.inputs import INPUT_FIELDS, N_INPUTS
from engine.errors import TuttiError

LOUDNESS_INPUT = sum(width for name, width in INPUT_FIELDS[: [n for n, _ in INPUT_FIELDS].index("loudness")])


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 128
    layers: int = 4
    heads: int = 4
    feedforward: int = 256
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise TuttiError(f"conductor d_model {self.d_model} is not a multiple of heads {self.heads}")
        if min(self.d_model, self.layers, self.heads, self.feedforward) < 1:
            raise TuttiError("conductor d_model, layers, heads and feedforward must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


class Block(nn.Module):
    """A pre-norm Transformer layer: self-attention (causal or not) and a GELU feed-forward, each
    residual. Written out rather than nn.TransformerEncoderLayer, whose inference fast path has
    no ONNX export."""

    def __init__(self, config: ModelConfig, causal: bool) -> None:
        super().__init__()
        self.heads, self.causal, self.dropout = config.heads, causal, config.dropout
        self.norm1 = nn.LayerNorm(config.d_model)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.feedforward = nn.Sequential(nn.Linear(config.d_model, config.feedforward), nn.GELU(),
                                         nn.Linear(config.feedforward, config.d_model))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(batch, steps, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                                  is_causal=self.causal)
        x = x + self.drop(self.out(attended.transpose(1, 2).reshape(batch, steps, width)))
        return x + self.drop(self.feedforward(self.norm2(x)))


def _encoder(config: ModelConfig, layers: int, causal: bool) -> nn.Sequential:
    return nn.Sequential(*(Block(config, causal) for _ in range(layers)))


class Conductor(nn.Module):
    """[B, T, N_INPUTS] input steps -> [B, T, HORIZON_BINS, OUTPUT_WIDTH], causal over T."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(N_INPUTS, config.d_model)
        self.position = nn.Parameter(torch.zeros(CONTEXT_STEPS, config.d_model))
        self.encoder = _encoder(config, config.layers, causal=True)
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, HORIZON_BINS * OUTPUT_WIDTH)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        steps = inputs.shape[1]
        hidden = self.embed(inputs) + self.position[CONTEXT_STEPS - steps:]
        hidden = self.norm(self.encoder(hidden))
        return self.head(hidden).reshape(inputs.shape[0], steps, HORIZON_BINS, OUTPUT_WIDTH)


class LastStep(nn.Module):
    """The exported graph: the prediction of the newest step only, [B, HORIZON_BINS, OUTPUT_WIDTH]."""

    def __init__(self, conductor: Conductor) -> None:
        super().__init__()
        self.conductor = conductor

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.conductor(inputs)[:, -1]


class LoudnessBaseline(nn.Module):
    """[B, T, N_INPUTS] -> [B, T, HORIZON_BINS, len(ROLES)] scaled loudness, from the leader's
    loudness alone, every step attending to the whole window (past and future)."""

    baseline_layers = 6

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(1, config.d_model)
        self.position = nn.Parameter(torch.zeros(CONTEXT_STEPS, config.d_model))
        self.encoder = _encoder(config, self.baseline_layers, causal=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, HORIZON_BINS * len(ROLES))
        nn.init.normal_(self.position, std=0.02)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        steps = inputs.shape[1]
        loudness = inputs[:, :, LOUDNESS_INPUT : LOUDNESS_INPUT + 1]
        hidden = self.norm(self.encoder(self.embed(loudness) + self.position[CONTEXT_STEPS - steps:]))
        return self.head(hidden).reshape(inputs.shape[0], steps, HORIZON_BINS, len(ROLES))


# The baseline's width (its depth is its own, 6): the size it was first trained at.
BASELINE_MODEL = ModelConfig(d_model=96, layers=3, heads=4, feedforward=192, dropout=0.1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
