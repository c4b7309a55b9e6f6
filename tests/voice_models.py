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


def synthetic_stems(sample_rate_hz: int = 16000, seconds: float = 3.0):
    """Two short 'instruments' analysed by the engine: a bright sawtooth-like and a mellow tone."""
    import numpy as np

    from engine.features.frames import F0, LOUDNESS, VOICING
    from engine.features.streaming import StreamingAnalyzer
    from training.voice.dataset import StemData

    analyzer = StreamingAnalyzer(sample_rate_hz)
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    stems = []
    for name, base, rolloff in (("bass", 110.0, 1.0), ("strings", 330.0, 2.0)):
        f0 = base * 2 ** (np.floor(t * 4) % 5 / 12)
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate_hz
        audio = sum(np.sin(h * phase) / h**rolloff for h in range(1, 12)) * 0.2 * (0.6 + 0.4 * np.sin(2 * np.pi * t))
        audio = audio.astype(np.float32)
        values = analyzer.analyze(audio).values
        voiced = np.where(values[:, VOICING] >= 0.5, values[:, F0], 0.0)
        hop = sample_rate_hz // 250
        stems.append(StemData("synthetic", name, name, voiced.astype(np.float32),
                              values[:, LOUDNESS].astype(np.float32), audio[: len(values) * hop]))
    return stems


def tiny_run_config(max_steps: int, **train):
    from training.voice.config import TrainConfig, VoiceRunConfig

    fields = dict(batch_size=4, window_s=0.5, max_steps=max_steps, val_every_steps=1000, checkpoint_every_s=1e9) | train
    return VoiceRunConfig(TINY, TrainConfig(**fields))


def run_tiny_training(run_dir: str, max_steps: int, checkpoint_every_steps: int = 0, resume: bool = True):
    """Train the tiny decoder on the synthetic stems (what the resume test kills and resumes)."""
    import torch

    from training.voice.dataset import WindowSampler
    from training.voice.train import train

    torch.set_num_threads(1)
    config = tiny_run_config(max_steps, checkpoint_every_steps=checkpoint_every_steps)
    sampler = WindowSampler(synthetic_stems(), TINY.instruments, 125, 16000)
    return train(config, sampler, None, Path(run_dir), resume=resume, show_progress=False)
