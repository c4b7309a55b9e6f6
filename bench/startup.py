#!/usr/bin/env python3
"""What the live host costs to start and to hold: time from `launch.py live` to its "live on"
line (device resolved, engine ready), and the resident memory of all its processes during a
take, on a private JACK dummy server. `--launch` points at another checkout's launch.py to
compare two versions on the same machine in the same run.

`python bench/startup.py [--runs 3] [--launch OTHER/launch.py ...]`
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.jack import private_jack_server  # noqa: E402
from demo.melody import DEMO_PATH  # noqa: E402
from realtime.procfs import descendants, resident_mib  # noqa: E402

HERE = Path(__file__).resolve().parents[1] / "launch.py"


def _tree_rss_mib(root: int) -> float:
    """Resident memory of `root` and all its descendants (multiprocessing's helpers included)."""
    return sum(resident_mib(pid) for pid in descendants(root))


def measure(launch: Path, server: str) -> tuple[float, float]:
    """(seconds to the "live on" line, MiB resident 2 s into the take)."""
    env = dict(os.environ, JACK_DEFAULT_SERVER=server)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(launch), "live", "--input-file", str(DEMO_PATH), "--duration", "4",
             "--record", str(Path(tmp) / "take"), "--set", "midi.virtual_port=false"],
            cwd=launch.parent, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )
        ready_s = float("nan")
        for line in process.stdout:
            if line.startswith("tutti: live on"):
                ready_s = time.perf_counter() - began
                break
        time.sleep(2.0)
        rss = _tree_rss_mib(process.pid)
        process.communicate(timeout=120)
    return ready_s, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--launch", type=Path, nargs="*", default=[], help="other checkouts' launch.py to compare")
    args = parser.parse_args()
    print("| launch.py | start to 'live on' s (median) | resident MiB, all processes (median) |")
    print("|---|---|---|")
    with private_jack_server(128) as server:
        for launch in [HERE, *args.launch]:
            results = [measure(launch.resolve(), server) for _ in range(args.runs)]
            ready = statistics.median(r[0] for r in results)
            rss = statistics.median(r[1] for r in results)
            print(f"| {launch.resolve().parent} | {ready:.2f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
