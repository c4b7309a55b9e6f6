"""Synthetic loads for the live benchmark: what the control process will carry beside the engine.

- `gui4` / `gui8`: a pure-Python thread busy 4 (8) ms of every 16 ms, like a Qt window
  repainting meters at 60 Hz: it holds the GIL while it runs.
- `tasks`: a conductor-like task (a 5 ms GIL-free call, then 1 ms of Python, every 40 ms) and a
  retrieval-like task (an hnswlib query, then 5 ms of Python, every second) on their own threads.

A load runs as threads of the calling process (`LoadThreads`) or alone in a process of its own
(`LoadProcess`: the floor a loaded row is read against, what the CPU alone costs on 2 cores).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import time

import numpy as np

LOADS = ("none", "gui4", "gui8", "tasks")


def busy_python(seconds: float) -> None:
    """Hold the GIL (between switch intervals) for `seconds` of pure-Python work."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _calibrated_gil_free_bytes(seconds: float) -> bytes:
    """A buffer whose SHA-256 takes about `seconds` (hashlib releases the GIL on large data)."""
    probe = bytes(1 << 20)
    began = time.perf_counter()
    hashlib.sha256(probe).digest()
    per_byte = (time.perf_counter() - began) / len(probe)
    return bytes(max(1 << 16, int(seconds / per_byte)))


def _periodic(stop: threading.Event, period_s: float, work) -> None:  # noqa: ANN001
    next_start = time.perf_counter()
    while not stop.is_set():
        work()
        next_start += period_s
        delay = next_start - time.perf_counter()
        if delay > 0:
            stop.wait(delay)
        else:
            next_start = time.perf_counter()


def _task_workloads() -> list[tuple[float, object]]:
    import hnswlib

    blob = _calibrated_gil_free_bytes(0.005)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((20_000, 64)).astype(np.float32)
    index = hnswlib.Index(space="cosine", dim=64)
    index.init_index(max_elements=len(data), ef_construction=100, M=16)
    index.add_items(data, num_threads=1)
    index.set_ef(64)
    query = data[:1] + 0.01

    def conductor() -> None:
        hashlib.sha256(blob).digest()
        busy_python(0.001)

    def retrieval() -> None:
        index.knn_query(query, k=10, num_threads=1)
        busy_python(0.005)

    return [(0.040, conductor), (1.0, retrieval)]


def workloads(load: str) -> list[tuple[float, object]]:
    """(period in s, work) pairs for `load`."""
    if load == "none":
        return []
    if load in ("gui4", "gui8"):
        busy_s = 0.004 if load == "gui4" else 0.008
        return [(0.016, lambda: busy_python(busy_s))]
    if load == "tasks":
        return _task_workloads()
    raise ValueError(f"unknown load {load!r}: one of {', '.join(LOADS)}")


class LoadThreads:
    """Run `load` on threads of this process while the context is open."""

    def __init__(self, load: str) -> None:
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=_periodic, args=(self._stop, period, work), daemon=True)
            for period, work in workloads(load)
        ]

    def __enter__(self) -> LoadThreads:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _run_in_process(load: str, ready, stop) -> None:  # noqa: ANN001
    with LoadThreads(load):
        ready.set()
        stop.wait()


class LoadProcess:
    """Run `load` in a process of its own while the context is open."""

    def __init__(self, load: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._process = context.Process(target=_run_in_process, args=(load, self._ready, self._stop), daemon=True)

    def __enter__(self) -> LoadProcess:
        self._process.start()
        self._ready.wait(60)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._process.join(10)
