#!/usr/bin/env python3
"""Real-time factor of `perform` (the whole offline chain) on the demo input.

`python bench/offline.py [--blocks 64 128 1024]` prints seconds of audio rendered per
wall-clock second for each block size, plus per-block p50/p99.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.melody import DEMO_PATH  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.offline import perform_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, nargs="+", default=[64, 128, 1024])
    parser.add_argument("--input", type=Path, default=DEMO_PATH)
    args = parser.parse_args()
    print(f"{'block':>5} {'voices':>6} {'real-time x':>11} {'p50 us':>8} {'p99 us':>8} {'p99 % block':>11}")
    for block in args.blocks:
        config = load_config(sets=[f"engine.block_samples={block}"])
        with tempfile.TemporaryDirectory() as tmp:
            session = perform_file(args.input, Path(tmp) / "out", config)
        t = session["timings"]
        print(
            f"{block:5d} {len(session['voices']):6d} {t['realtime_factor']:11.1f} "
            f"{t['block_us_p50']:8.1f} {t['block_us_p99']:8.1f} {t['block_load_p99']:11.1%}"
        )


if __name__ == "__main__":
    main()
