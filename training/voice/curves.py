"""A PNG of the training curves: training loss per step and validation loss, log scale."""

from __future__ import annotations

from pathlib import Path

from engine.safe_files import atomic_path


def plot_curves(history: list[dict], path: Path, title: str, ylabel: str = "multi-scale spectral loss") -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
    figure, axis = plt.subplots(figsize=(7, 4))
    if train:
        axis.plot(*zip(*train), lw=0.6, alpha=0.6, label="train (per step)")
    if val:
        axis.plot(*zip(*val), "o-", label="validation")
    axis.set_xlabel("step")
    axis.set_ylabel(ylabel)
    axis.set_yscale("log")
    axis.set_title(title)
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
