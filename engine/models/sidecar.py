"""A shipped model's JSON sidecar (NAME.json beside NAME.onnx): read it and check what every
model kind shares (kind, format, feature version, control rate, the ONNX bytes' hash), each
failure a one-line TuttiError that says why and what to do."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from engine.errors import TuttiError
from engine.features.frames import FEATURE_VERSION
from engine.rates import CONTROL_RATE_HZ
from engine.safe_files import check_not_shipped


def sidecar_path(onnx_path: Path) -> Path:
    return Path(onnx_path).with_suffix(".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def require(condition: bool, path: Path, why: str) -> None:
    if not condition:
        raise TuttiError(f"model {path} is refused: {why}")


def read_sidecar(onnx_path: Path, kind: str, sidecar_format: int, export_command: str) -> dict[str, Any]:
    """The sidecar of `onnx_path`, checked for `kind`, its format, the feature version and rate."""
    side = sidecar_path(onnx_path)
    if not onnx_path.is_file():
        raise TuttiError(f"model {onnx_path} does not exist: export one ({export_command}) or check the name")
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TuttiError(f"model {onnx_path} is refused: its sidecar {side.name} is missing; re-export the model") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise TuttiError(f"model {onnx_path} is refused: its sidecar {side.name} is not readable JSON ({err}); re-export it") from None
    require(isinstance(sidecar, dict) and sidecar.get("kind") == kind, onnx_path,
             f"its sidecar's kind is {sidecar.get('kind') if isinstance(sidecar, dict) else None!r}, not {kind!r}")
    require(sidecar.get("sidecar_format") == sidecar_format, onnx_path,
             f"sidecar format {sidecar.get('sidecar_format')!r}, the engine reads {sidecar_format}; re-export it")
    require(sidecar.get("feature_version") == FEATURE_VERSION, onnx_path,
             f"it was trained on feature version {sidecar.get('feature_version')!r}, the engine computes version "
             f"{FEATURE_VERSION}; retrain and re-export it")
    require(sidecar.get("frame_rate_hz") == CONTROL_RATE_HZ, onnx_path,
             f"its frame rate is {sidecar.get('frame_rate_hz')!r} Hz, the engine's control rate {CONTROL_RATE_HZ} Hz")
    return sidecar


def check_sha256(onnx_path: Path, sidecar: dict[str, Any]) -> None:
    require(sidecar.get("onnx_sha256") == file_sha256(onnx_path), onnx_path,
             f"{onnx_path.name} is not the file its sidecar was written for (sha256 differs); re-export the pair")


def claim_model_path(path: Path, force: bool, kind: str, command: str) -> None:
    """Refuse to export over an existing model unless `force`, and never over one whose sidecar
    is not of `kind` (Tutti did not write it); refuse shipped folders `command` does not build."""
    check_not_shipped(path, command)
    if path.suffix != ".onnx":
        raise TuttiError(f"export target {path} must end in .onnx")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not force:
        raise TuttiError(f"model {path} exists: add --force to replace it")
    try:
        owner = json.loads(sidecar_path(path).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        owner = None
    if owner != kind:
        raise TuttiError(f"{path} has no Tutti sidecar of kind {kind}, so Tutti did not write it: pick another path or move it")
