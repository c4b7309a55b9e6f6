"""Checkpoints under the run folder, written atomically: `last.pt` (everything a resume needs:
weights, optimiser, schedule, step, history) and `best.pt` (the best validation weights)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import torch

from engine.errors import TuttiError
from engine.safe_files import atomic_write_bytes

LAST, BEST = "last.pt", "best.pt"


def save(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise TuttiError(f"no checkpoint {path}: train it first (launch.py train-instrument or train-conductor)") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise TuttiError(f"checkpoint {path} is damaged ({' '.join(str(err).split())[:80]}): retrain or pick another") from None


def resume(run_dir: Path, config: dict[str, Any], resume_key: Callable[[dict[str, Any]], Any], model: torch.nn.Module,
           optimiser: torch.optim.Optimizer, schedule: Any) -> dict[str, Any] | None:
    """Restore model, optimiser and schedule from run_dir/last.pt if it was trained with the same
    config (compared through `resume_key`); its training state, or None when there is none."""
    last_path = run_dir / LAST
    if not last_path.is_file():
        return None
    saved = load(last_path)
    if resume_key(saved["config"]) != resume_key(config):
        raise TuttiError(f"{last_path} was trained with another config: use a new run folder or --fresh")
    model.load_state_dict(saved["model"])
    optimiser.load_state_dict(saved["optimiser"])
    schedule.load_state_dict(saved["schedule"])
    return saved["state"]
