"""A piano-roll PNG of a conductor performance: the leader's pitch, each role's notes, and
(where known) the true parts faintly beneath, so a reader sees whether the bass moves with
the harmony and the followers land with the leader."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.conductor.contract import FRAME_S, ROLES
from engine.conductor.inputs import VOICING_THRESHOLD
from engine.features.frames import F0, VOICING
from engine.parts import PART_ACTIVE, PART_F0, PART_ONSET
from engine.safe_files import atomic_path

COLOURS = {"bass": "tab:blue", "counter": "tab:green", "harmony": "tab:orange", "drums": "tab:red"}


def _midi(f0_hz: np.ndarray) -> np.ndarray:
    return 69.0 + 12.0 * np.log2(np.maximum(f0_hz, 1e-6) / 440.0)


def plot_roll(parts: np.ndarray, frames: np.ndarray, path: Path, title: str, truth=None,  # noqa: ANN001 (RoleTracks)
              seconds: float = 30.0) -> None:
    """Write `path`: the first `seconds` of parts [n, roles, 4, notes] and leader frames [n, 16]."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    n = min(len(frames), int(seconds / FRAME_S))
    t = (np.arange(n) + 1) * FRAME_S
    figure, axis = plt.subplots(figsize=(12, 5))
    if truth is not None:
        for role in ("bass", "counter"):
            pitch = truth.pitch[role][:n].astype(float)
            axis.plot(t, np.where(pitch >= 0, pitch, np.nan), color=COLOURS[role], lw=5, alpha=0.18)
    voiced = frames[:n, VOICING] >= VOICING_THRESHOLD
    axis.plot(t, np.where(voiced, _midi(frames[:n, F0]), np.nan), color="black", lw=1.2, label="leader (analysed)")
    for r, role in enumerate(ROLES):
        part = parts[:n, r]
        for k in range(part.shape[-1]):
            active = part[:, PART_ACTIVE, k] > 0
            pitch = np.where(active, _midi(part[:, PART_F0, k]), np.nan)
            axis.plot(t, pitch, color=COLOURS[role], lw=2, label=role if k == 0 else None)
            starts = np.nonzero(part[:, PART_ONSET, k] > 0)[0]
            axis.plot(t[starts], pitch[starts], "|", color=COLOURS[role], ms=8)
    axis.set_xlabel("heard time (s)")
    axis.set_ylabel("MIDI pitch")
    axis.set_title(title + ("  (faint: the true bass and counter-line)" if truth is not None else ""))
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right", fontsize=8, ncol=5)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90)
    plt.close(figure)
