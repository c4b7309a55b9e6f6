"""Tiny decoders and exported models for the voice tests (random weights, a few hundred kB)."""

from __future__ import annotations

from pathlib import Path

import torch

from training.voice.config import DecoderConfig
from training.voice.decoder import Decoder
from training.voice.export import export_decoder

TINY = DecoderConfig(n_harmonics=24, n_noise_bands=17, mlp_units=32, gru_units=32, embedding_dim=4,
                     instruments=("bass", "strings"))


def tiny_decoder(seed: int = 0, config: DecoderConfig = TINY) -> Decoder:
    torch.manual_seed(seed)
    model = Decoder(config)
    with torch.no_grad():  # louder than a fresh head, so the outputs are not all ~1e-7
        model.head.bias[0] = 2.0
    return model.eval()


def export_tiny(folder: Path, name: str = "tiny", seed: int = 0, force: bool = False) -> Path:
    path = folder / f"{name}.onnx"
    export_decoder(tiny_decoder(seed), path, config={"decoder": {}, "train": {}}, manifest_sha256="0" * 64,
                   metrics={}, steps=0, force=force)
    return path
