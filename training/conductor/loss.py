"""The conductor's training loss: each output field against its target, where its mask says
the target is judged (a role the song has, a part that sounds, a step of the song itself)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from engine.conductor.contract import ROLES, output_slices

ONSET_POS_WEIGHT = 4.0  # onsets fall in about one bin in eight: weigh them up
WEIGHTS = {"note": 1.0, "onset": 1.0, "loudness": 1.0, "pitch_classes": 1.0, "register": 0.5}


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def _mask(batch: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return batch[f"{name}_mask"] * batch["real"][:, :, None]


def conductor_losses(outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per field loss of outputs [B, T, H, W] against batch targets [B, T, H, ...]."""
    slices = output_slices()
    losses: dict[str, torch.Tensor] = {}
    for role in ("bass", "counter"):
        logits = outputs[..., slices[f"{role}_note"]]
        ce = F.cross_entropy(logits.flatten(0, 2), batch[f"{role}_note"].flatten(), reduction="none")
        losses[f"{role}_note"] = _masked_mean(ce.reshape(logits.shape[:3]), _mask(batch, f"{role}_note"))
    weight = torch.tensor(ONSET_POS_WEIGHT)
    for role in ROLES:
        onset = F.binary_cross_entropy_with_logits(outputs[..., slices[f"{role}_onset"]][..., 0], batch[f"{role}_onset"],
                                                   pos_weight=weight, reduction="none")
        losses[f"{role}_onset"] = _masked_mean(onset, _mask(batch, f"{role}_onset"))
        error = (outputs[..., slices[f"{role}_loudness"]][..., 0] - batch[f"{role}_loudness"]).abs()
        losses[f"{role}_loudness"] = _masked_mean(error, _mask(batch, f"{role}_loudness"))
    pcs = F.binary_cross_entropy_with_logits(outputs[..., slices["harmony_pitch_classes"]], batch["harmony_pitch_classes"],
                                             reduction="none").mean(dim=-1)
    losses["harmony_pitch_classes"] = _masked_mean(pcs, _mask(batch, "harmony_pitch_classes"))
    register = (outputs[..., slices["harmony_register"]][..., 0] - batch["harmony_register"]).abs()
    losses["harmony_register"] = _masked_mean(register, _mask(batch, "harmony_register"))
    return losses


def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(WEIGHTS[_kind(name)] * value for name, value in losses.items())


def _kind(name: str) -> str:
    for kind in WEIGHTS:
        if name.endswith(kind):
            return kind
    raise KeyError(name)


def baseline_loss(outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean L1 of the loudness baseline's [B, T, H, roles] against each role's loudness."""
    return sum(_masked_mean((outputs[..., i] - batch[f"{role}_loudness"]).abs(), _mask(batch, f"{role}_loudness"))
               for i, role in enumerate(ROLES)) / len(ROLES)
