"""Checkpoints under the run folder, written atomically: `last.pt` (everything a resume needs:
weights, optimiser, schedule, step, history) and `best.pt` (the best validation weights)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

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
