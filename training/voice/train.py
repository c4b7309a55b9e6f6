"""The training loop: Adam with DDSP's exponential decay, validation, early stopping,
checkpoints every few minutes and resume after a kill, a progress bar, a PNG of the curves.

Batches and synth noise are drawn from generators seeded by (seed, step) for the whole global
batch, each process taking its slice: a resumed run continues exactly as an uninterrupted one,
and N data-parallel processes see the same global batch as one process (training/voice/
distributed.py).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.distributed as dist

from engine.errors import TuttiError
from engine.rates import CONTROL_RATE_HZ, frame_samples
from training.voice import checkpoint
from training.voice.config import VoiceRunConfig
from training.voice.curves import plot_curves
from training.voice.dataset import WindowSampler
from training.voice.decoder import Decoder
from training.voice.loss import multiscale_spectral_loss
from training.voice.synth import TorchSynth, white_noise

VALIDATION_SEED = 104729


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class TrainingProgress:
    """One redrawn line on a terminal (plain lines every 5 % elsewhere): loss, validation, ETA."""

    def __init__(self, total: int, first: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.first, self.stream = total, first, stream
        self.started = time.monotonic()
        self._tty = stream.isatty()
        self._next = first

    def update(self, step: int, loss: float, val_loss: float | None) -> None:
        done = step + 1 - self.first
        elapsed = time.monotonic() - self.started
        per_step = elapsed / max(done, 1)
        eta = per_step * (self.total - step - 1)
        val = f" val {val_loss:.3f}" if val_loss is not None else ""
        line = (f"train step {step + 1}/{self.total} loss {loss:.3f}{val} {per_step:.2f} s/step "
                f"{_clock(elapsed)} elapsed, ETA {_clock(eta)}")
        if self._tty:
            self.stream.write("\r" + line)
        elif step + 1 >= self._next or step + 1 == self.total:
            self._next = step + 1 + max(1, self.total // 20)
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")


@dataclass
class TrainResult:
    steps: int
    best_val_loss: float
    stopped: str
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds_per_step: float = 0.0
    hours: dict[str, float] = field(default_factory=dict)


_RUN_LENGTH_FIELDS = ("max_steps", "max_minutes", "patience", "checkpoint_every_s", "checkpoint_every_steps")


def _resume_key(config: dict[str, Any]) -> dict[str, Any]:
    """The config without the fields a resumed run may change (how long it runs, how it saves)."""
    train = {k: v for k, v in config["train"].items() if k not in _RUN_LENGTH_FIELDS}
    return {"decoder": config["decoder"], "train": train}


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in batch.items()}


def example_losses(
    model: torch.nn.Module, synth: TorchSynth, batch: dict[str, torch.Tensor], white: torch.Tensor,
    fft_sizes: tuple[int, ...],
) -> torch.Tensor:
    """Per-example multi-scale spectral loss [B] of the decoder's resynthesis against the audio."""
    f0 = batch["f0_hz"]
    state = torch.zeros(model_config(model).gru_layers, f0.shape[0], model_config(model).gru_units)
    amplitudes, noise, _ = model(f0, batch["loudness_db"], batch["instrument"], state)
    return multiscale_spectral_loss(synth(f0, amplitudes, noise, white), batch["audio"], fft_sizes)


def model_config(model: torch.nn.Module):
    return getattr(model, "module", model).config


def _slice(batch: dict[str, np.ndarray], rank: int, world: int) -> dict[str, np.ndarray]:
    size = len(batch["instrument"]) // world
    return {key: value[rank * size : (rank + 1) * size] for key, value in batch.items()}


def _validate(model: Decoder, synth: TorchSynth, val: dict[str, np.ndarray], fft_sizes: tuple[int, ...]) -> float:
    tensors = _tensors(val)
    white = white_noise(tuple(tensors["audio"].shape), torch.Generator().manual_seed(VALIDATION_SEED))
    with torch.no_grad():
        losses = [
            example_losses(model, synth, {k: v[i : i + 8] for k, v in tensors.items()}, white[i : i + 8], fft_sizes)
            for i in range(0, len(white), 8)
        ]
    return float(torch.cat(losses).mean())


def train(
    config: VoiceRunConfig,
    train_sampler: WindowSampler,
    val_sampler: WindowSampler | None,
    run_dir: Path,
    *,
    resume: bool = True,
    show_progress: bool = True,
) -> TrainResult:
    """Train (or resume) a decoder in `run_dir`; returns the summary. Rank 0 writes the files."""
    rank, world = _world()
    decoder_cfg, train_cfg = config.decoder, config.train
    if train_cfg.batch_size % world:
        raise TuttiError(f"batch size {train_cfg.batch_size} does not split over {world} processes: pick a multiple")
    torch.manual_seed(train_cfg.seed)
    model = Decoder(decoder_cfg)
    synth = TorchSynth(decoder_cfg.sample_rate_hz, frame_samples(decoder_cfg.sample_rate_hz), decoder_cfg.n_noise_bands)
    optimiser = torch.optim.Adam(model.parameters(), lr=train_cfg.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: train_cfg.decay_rate ** (step / train_cfg.decay_steps)
    )
    state: dict[str, Any] = {"step": 0, "best_val_loss": math.inf, "bad_validations": 0, "history": [], "train_s": 0.0}
    last_path = run_dir / checkpoint.LAST
    restored = checkpoint.resume(run_dir, config.to_dict(), _resume_key, model, optimiser, schedule) if resume else None
    state = restored or state
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    n_frames = int(round(train_cfg.window_s * CONTROL_RATE_HZ))
    val = val_sampler.fixed(train_cfg.val_windows, train_cfg.seed) if val_sampler is not None else None
    progress = TrainingProgress(train_cfg.max_steps, state["step"]) if show_progress and rank == 0 else None
    started = time.monotonic()
    last_save = started
    stopped = "max_steps"

    def save_last() -> None:
        if rank == 0:
            checkpoint.save(last_path, {
                "config": config.to_dict(), "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(), "state": state,
            })

    def validate(record: dict[str, Any]) -> float:
        """Validation loss now; best.pt follows the best one, early stopping counts the others."""
        val_loss = _validate(model, synth, val, train_cfg.fft_sizes)
        record["val_loss"] = val_loss
        if val_loss < state["best_val_loss"]:
            state["best_val_loss"], state["bad_validations"] = val_loss, 0
            if rank == 0:
                checkpoint.save(run_dir / checkpoint.BEST, {"config": config.to_dict(), "model": model.state_dict(),
                                                            "step": state["step"], "val_loss": val_loss})
        else:
            state["bad_validations"] += 1
        return val_loss

    for step in range(state["step"], train_cfg.max_steps):
        tick = time.perf_counter()
        batch = train_sampler.batch(np.random.default_rng([train_cfg.seed, step]), train_cfg.batch_size)
        white = white_noise((train_cfg.batch_size, n_frames * train_sampler.hop),
                            torch.Generator().manual_seed(train_cfg.seed * 1_000_003 + step))
        size = train_cfg.batch_size // world
        losses = example_losses(net, synth, _tensors(_slice(batch, rank, world)), white[rank * size : (rank + 1) * size],
                                train_cfg.fft_sizes)
        loss = losses.mean()
        if not torch.isfinite(loss):
            raise TuttiError(f"training loss became {float(loss)} at step {step}: lower train.learning_rate")
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip_norm)
        optimiser.step()
        schedule.step()
        logged = loss.detach().clone()
        if world > 1:
            dist.all_reduce(logged)
            logged /= world
        record: dict[str, Any] = {"step": step, "loss": float(logged), "lr": schedule.get_last_lr()[0],
                                  "step_s": time.perf_counter() - tick}
        state["step"] = step + 1
        state["train_s"] += record["step_s"]
        val_loss = None
        if val is not None and (step + 1) % train_cfg.val_every_steps == 0:
            val_loss = validate(record)
        state["history"].append(record)
        if progress is not None:
            progress.update(step, record["loss"], val_loss)
        now = time.monotonic()
        every = train_cfg.checkpoint_every_steps
        if now - last_save >= train_cfg.checkpoint_every_s or (every and (step + 1) % every == 0):
            save_last()
            last_save = now
        if state["bad_validations"] >= train_cfg.patience:
            stopped = "early_stopping"
            break
        if train_cfg.max_minutes and now - started >= 60.0 * train_cfg.max_minutes:
            stopped = "time_limit"
            break
    if progress is not None:
        progress.close()
    history = state["history"]
    if val is not None and history and "val_loss" not in history[-1]:
        validate(history[-1])  # the final weights are judged too
    save_last()
    if val is None and rank == 0:  # no validation split: the last weights are the best we have
        checkpoint.save(run_dir / checkpoint.BEST, {"config": config.to_dict(), "model": model.state_dict(),
                                                    "step": state["step"], "val_loss": math.nan})
    if rank == 0:
        plot_curves(state["history"], run_dir / "curves.png", f"{', '.join(decoder_cfg.instruments)}")
    steps = [h["step_s"] for h in state["history"]]
    return TrainResult(state["step"], state["best_val_loss"], stopped, state["history"],
                       float(np.median(steps)) if steps else 0.0, train_sampler.hours())


def load_decoder(path: Path) -> tuple[Decoder, VoiceRunConfig, dict[str, Any]]:
    """A trained decoder from best.pt (or last.pt), in eval mode, with its config."""
    saved = checkpoint.load(path)
    config = VoiceRunConfig.from_dict(saved["config"])
    model = Decoder(config.decoder)
    model.load_state_dict(saved["model"])
    model.eval()
    return model, config, saved
