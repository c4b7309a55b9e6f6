"""Training the conductor or its baseline: AdamW with warm-up and cosine decay, validation on
the val split, best.pt / last.pt checkpoints (resume after a kill continues the same run),
a progress line and a PNG of the curves.

Batches are drawn from a generator seeded by (seed, step), so a resumed run sees the batches
an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import TuttiError
from training.conductor.dataset import WindowSampler
from training.conductor.loss import baseline_loss, conductor_losses, total_loss
from training.conductor.model import Conductor, LoudnessBaseline, ModelConfig
from training.voice import checkpoint
from training.voice.curves import plot_curves
from training.voice.train import TrainingProgress

MODELS = {"conductor": Conductor, "baseline": LoudnessBaseline}


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 32
    max_steps: int = 4000
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip_norm: float = 1.0
    val_every_steps: int = 200
    val_windows: int = 256
    patience: int = 8
    checkpoint_every_s: float = 120.0
    max_minutes: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_steps < 1 or self.learning_rate <= 0:
            raise TuttiError("conductor train: batch_size and max_steps must be at least 1, learning_rate above 0")


@dataclass(frozen=True)
class RunConfig:
    kind: str = "conductor"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return cls(data["kind"], ModelConfig(**data["model"]), TrainConfig(**data["train"]))


_RUN_LENGTH = ("max_steps", "max_minutes", "patience", "checkpoint_every_s")


def _resume_key(config: dict[str, Any]) -> dict[str, Any]:
    return {"kind": config["kind"], "model": config["model"],
            "train": {k: v for k, v in config["train"].items() if k not in _RUN_LENGTH}}


def build_model(config: RunConfig) -> torch.nn.Module:
    if config.kind not in MODELS:
        raise TuttiError(f"conductor kind {config.kind!r}: pick one of {', '.join(MODELS)}")
    return MODELS[config.kind](config.model)


def _tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in batch.items()}


def batch_loss(model: torch.nn.Module, kind: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    outputs = model(batch["inputs"])
    if kind == "baseline":
        loss = baseline_loss(outputs, batch)
        return loss, {"loudness": float(loss.detach())}
    losses = conductor_losses(outputs, batch)
    return total_loss(losses), {name: float(value.detach()) for name, value in losses.items()}


def _validate(model: torch.nn.Module, kind: str, val: dict[str, np.ndarray]) -> float:
    model.eval()
    tensors = _tensors(val)
    with torch.no_grad():
        parts = [float(batch_loss(model, kind, {k: v[i : i + 64] for k, v in tensors.items()})[0])
                 for i in range(0, len(tensors["inputs"]), 64)]
    model.train()
    return float(np.mean(parts))


def _schedule(config: TrainConfig):  # noqa: ANN202
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def train(config: RunConfig, sampler: WindowSampler, val_sampler: WindowSampler | None, run_dir: Path,
          *, resume: bool = True, show_progress: bool = True) -> dict[str, Any]:
    """Train (or resume) in `run_dir`; returns a summary (steps, best validation loss, why it stopped)."""
    cfg = config.train
    torch.manual_seed(cfg.seed)
    model = build_model(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(cfg))
    state: dict[str, Any] = {"step": 0, "best_val_loss": math.inf, "bad_validations": 0, "history": [], "train_s": 0.0}
    last_path = run_dir / checkpoint.LAST
    restored = checkpoint.resume(run_dir, config.to_dict(), _resume_key, model, optimiser, schedule) if resume else None
    state = restored or state
    val = val_sampler.batch(np.random.default_rng([cfg.seed, 7919]), cfg.val_windows) if val_sampler else None
    progress = TrainingProgress(cfg.max_steps, state["step"]) if show_progress else None
    started = last_save = time.monotonic()
    stopped = "max_steps"

    def save_last() -> None:
        checkpoint.save(last_path, {"config": config.to_dict(), "model": model.state_dict(),
                                    "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(), "state": state})

    def validate(record: dict[str, Any]) -> float:
        val_loss = _validate(model, config.kind, val)
        record["val_loss"] = val_loss
        if val_loss < state["best_val_loss"]:
            state["best_val_loss"], state["bad_validations"] = val_loss, 0
            checkpoint.save(run_dir / checkpoint.BEST, {"config": config.to_dict(), "model": model.state_dict(),
                                                        "step": state["step"], "val_loss": val_loss})
        else:
            state["bad_validations"] += 1
        return val_loss

    model.train()
    for step in range(state["step"], cfg.max_steps):
        tick = time.perf_counter()
        batch = _tensors(sampler.batch(np.random.default_rng([cfg.seed, step]), cfg.batch_size))
        loss, parts = batch_loss(model, config.kind, batch)
        if not torch.isfinite(loss):
            raise TuttiError(f"conductor training loss became {float(loss)} at step {step}: lower train.learning_rate")
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
        optimiser.step()
        schedule.step()
        record: dict[str, Any] = {"step": step, "loss": float(loss.detach()), "parts": parts,
                                  "lr": schedule.get_last_lr()[0], "step_s": time.perf_counter() - tick}
        state["step"] = step + 1
        state["train_s"] += record["step_s"]
        val_loss = validate(record) if val is not None and (step + 1) % cfg.val_every_steps == 0 else None
        state["history"].append(record)
        if progress is not None:
            progress.update(step, record["loss"], val_loss)
        now = time.monotonic()
        if now - last_save >= cfg.checkpoint_every_s:
            save_last()
            last_save = now
        if state["bad_validations"] >= cfg.patience:
            stopped = "early_stopping"
            break
        if cfg.max_minutes and now - started >= 60.0 * cfg.max_minutes:
            stopped = "time_limit"
            break
    if progress is not None:
        progress.close()
    if val is not None and state["history"] and "val_loss" not in state["history"][-1]:
        validate(state["history"][-1])
    save_last()
    if val is None:
        checkpoint.save(run_dir / checkpoint.BEST, {"config": config.to_dict(), "model": model.state_dict(),
                                                    "step": state["step"], "val_loss": math.nan})
    plot_curves(state["history"], run_dir / "curves.png", f"{config.kind}: {sampler.hours:.2f} h of training songs",
                ylabel="loss (sum of field losses)" if config.kind == "conductor" else "loudness L1 (scaled)")
    steps = [h["step_s"] for h in state["history"]]
    return {"steps": state["step"], "best_val_loss": state["best_val_loss"], "stopped": stopped,
            "seconds_per_step": float(np.median(steps)) if steps else 0.0, "train_s": state["train_s"],
            "hours": sampler.hours}


def load_model(path: Path) -> tuple[torch.nn.Module, RunConfig, dict[str, Any]]:
    """A trained conductor or baseline from best.pt (or last.pt), in eval mode."""
    saved = checkpoint.load(path)
    config = RunConfig.from_dict(saved["config"])
    model = build_model(config)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError:
        raise TuttiError(f"checkpoint {path} does not fit this version's {config.kind} network: retrain it (train-conductor --fresh)") from None
    model.eval()
    return model, config, saved
