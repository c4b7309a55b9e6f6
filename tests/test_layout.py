"""The run-time packages never import torch, directly or through another module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_runtime_packages_do_not_import_torch() -> None:
    code = (
        "import sys, pkgutil, importlib\n"
        "import engine, realtime, gui\n"
        "for package in (engine, realtime, gui):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(module.name)\n"
        "import launch\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(len(bad)); assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "0"


def test_training_twin_does_import_torch() -> None:
    """The check above would pass vacuously if nothing could import torch at all."""
    code = "import sys, training.features_torch; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr[-2000:]
