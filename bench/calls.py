#!/usr/bin/env python3
"""How many compiled (numba) calls the block processor makes per block: each one is a
transition from Python into a kernel and back, which takes the GIL back on return.

Every numba dispatcher in engine/ is wrapped in a counter (calls from one kernel into another
are compiled in and not counted: only Python-to-kernel calls are). Blocks are classed by
whether they hold a 4 ms frame edge.

`python bench/calls.py [--blocksize 128] [--voices 3 6 12]`
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import engine  # noqa: E402
from bench.live import config_with_voices  # noqa: E402
from demo.melody import DEMO_PATH  # noqa: E402
from engine.audio_io import read_mono  # noqa: E402

COUNT = [0]


def _counted(dispatcher):  # noqa: ANN001, ANN202
    def call(*args, **kwargs):  # noqa: ANN002, ANN003
        COUNT[0] += 1
        return dispatcher(*args, **kwargs)

    return call


def wrap_dispatchers() -> int:
    """Replace every module-level numba dispatcher under engine/ by a counting wrapper."""
    wrapped = 0
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        module = importlib.import_module(info.name)
        for name, value in list(vars(module).items()):
            if isinstance(value, numba.core.registry.CPUDispatcher):
                setattr(module, name, _counted(value))
                wrapped += 1
    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocksize", type=int, default=128)
    parser.add_argument("--voices", type=int, nargs="+", default=[3, 6, 12])
    args = parser.parse_args()
    from engine.processor import BlockProcessor

    # Build (and so compile) every processor before wrapping: a kernel compiled after the
    # wrap would find a Python wrapper where it expects another kernel.
    processors = {n: BlockProcessor(config_with_voices(n, args.blocksize)) for n in args.voices}
    wrap_dispatchers()
    audio = read_mono(DEMO_PATH, 48000)[: 4 * 48000]
    print("| voices | block | calls, block with a frame edge (median) | calls, block without (median) |")
    print("|---|---|---|---|")
    for n_voices, processor in processors.items():
        with_edge, without = [], []
        for start in range(0, len(audio) - args.blocksize, args.blocksize):
            frames_before = processor.frame_index
            COUNT[0] = 0
            processor.process(np.ascontiguousarray(audio[start:start + args.blocksize]))
            (with_edge if processor.frame_index > frames_before else without).append(COUNT[0])
        print(f"| {n_voices} | {args.blocksize} | {statistics.median(with_edge):.0f} | "
              f"{statistics.median(without) if without else float('nan'):.0f} |", flush=True)


if __name__ == "__main__":
    main()
