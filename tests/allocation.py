"""Allocation checks of the audio path, run in a fresh interpreter.

numba counts its runtime (NRT) allocations only when NUMBA_NRT_STATS=1 is set before numba is
imported, which other test modules may already have done: each check is a script that
`run_fresh` runs in a new process with the counters on. Scripts may import `measure` from here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from numba.core.runtime import rtsys

REPO = Path(__file__).resolve().parents[1]


def run_fresh(script: str, *, timeout_s: float) -> str:
    """Run `script` in a new interpreter (repo root, NUMBA_NRT_STATS=1); its last stdout line."""
    env = dict(os.environ, NUMBA_NRT_STATS="1", PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def measure(run: Callable[[int], None], calls: int) -> tuple[int, int, int, int]:
    """(numba allocations, numba kept, Python bytes kept, Python peak above start) of
    `run(calls)`; tracemalloc must already be tracing."""
    before = rtsys.get_allocation_stats()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    run(calls)
    current, peak = tracemalloc.get_traced_memory()
    after = rtsys.get_allocation_stats()
    kept = (after.alloc - after.free) - (before.alloc - before.free)
    return after.alloc - before.alloc, kept, current - base, peak - base


def measure_short_and_long(
    run: Callable[[int], None], short_calls: int, long_calls: int
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """`measure` of run(short_calls), then of run(long_calls), after a warm-up run(short_calls)
    and one discarded measurement (which starts tracemalloc and settles its bookkeeping).

    Allocation-free code gives equal readings but the first (numba's per-call argument records).
    """
    run(short_calls)
    tracemalloc.start()
    measure(run, short_calls)
    return measure(run, short_calls), measure(run, long_calls)
