"""Always-on callback telemetry: durations, thread CPU time, xruns (flags and late arrivals),
exceptions caught in the callback.

The audio thread calls `record_callback` with its clock readings and the status flag; it only
stores floats into preallocated arrays and bumps counters. The arrays may be shared memory
(`telemetry_layout`), so the control process reads a `snapshot()` while the engine process
writes (percentiles are computed there, never on the audio thread). perf_counter is
CLOCK_MONOTONIC on Linux, the same clock in both processes.
"""

from __future__ import annotations

import time

import numpy as np

LATE_FACTOR = 1.5  # a callback arriving more than 1.5 blocks after the previous is an xrun
HISTORY = 8192
# int64 counters
CALLBACKS, FLAGGED_XRUNS, LATE_XRUNS, EXCEPTIONS = 0, 1, 2, 3
# float64 cells
LAST_ARRIVAL_S, MAX_DURATION_S, PROCESS_CPU_S, PROCESS_WALL_S = 0, 1, 2, 3


def telemetry_layout() -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of the telemetry arrays, for a shared-memory arena."""
    return [
        ("telemetry_durations", (HISTORY,), "float64"),
        ("telemetry_thread_cpu", (HISTORY,), "float64"),
        ("telemetry_counters", (8,), "int64"),
        ("telemetry_clock", (8,), "float64"),
    ]


class CallbackTelemetry:
    """Counters and rings of recent callback durations (wall and thread CPU) for one stream."""

    def __init__(self, block_samples: int, sample_rate_hz: int,
                 arrays: dict[str, np.ndarray] | None = None) -> None:
        self.block_s = block_samples / sample_rate_hz
        if arrays is None:
            arrays = {name: np.zeros(shape, dtype=dtype) for name, shape, dtype in telemetry_layout()}
        self._durations_s = arrays["telemetry_durations"]
        self._thread_cpu_s = arrays["telemetry_thread_cpu"]
        self._counters = arrays["telemetry_counters"]
        self._clock = arrays["telemetry_clock"]
        self._history = self._durations_s.shape[0]

    def reset(self) -> None:
        """Start counting afresh (the writer side, before the stream starts)."""
        self._durations_s[:] = 0.0
        self._thread_cpu_s[:] = 0.0
        self._counters[:] = 0
        self._clock[:] = 0.0
        self._clock[LAST_ARRIVAL_S] = -1.0
        self._clock[PROCESS_CPU_S] = time.process_time()
        self._clock[PROCESS_WALL_S] = time.perf_counter()

    def record_callback(self, arrival_s: float, finished_s: float, status_flagged: bool,
                        thread_cpu_s: float = 0.0) -> None:
        """Audio thread: log one callback (perf_counter readings at entry and exit, and the
        callback thread's CPU time spent in between)."""
        counters, clock = self._counters, self._clock
        n = counters[CALLBACKS]
        duration = finished_s - arrival_s
        self._durations_s[n % self._history] = duration
        self._thread_cpu_s[n % self._history] = thread_cpu_s
        if duration > clock[MAX_DURATION_S]:
            clock[MAX_DURATION_S] = duration
        last = clock[LAST_ARRIVAL_S]
        if status_flagged:
            counters[FLAGGED_XRUNS] += 1
        elif last >= 0.0 and arrival_s - last > LATE_FACTOR * self.block_s:
            counters[LATE_XRUNS] += 1
        clock[LAST_ARRIVAL_S] = arrival_s
        counters[CALLBACKS] = n + 1

    def count_exception(self) -> None:
        """Audio thread: an exception was caught in the callback (its block went out silent)."""
        self._counters[EXCEPTIONS] += 1

    @property
    def callbacks(self) -> int:
        return int(self._counters[CALLBACKS])

    @property
    def last_arrival_s(self) -> float:
        return float(self._clock[LAST_ARRIVAL_S])

    @property
    def xruns(self) -> int:
        return int(self._counters[FLAGGED_XRUNS] + self._counters[LATE_XRUNS])

    @property
    def exceptions(self) -> int:
        return int(self._counters[EXCEPTIONS])

    def snapshot(self, cpu_load: float | None = None) -> dict[str, float]:
        """Percentiles and counters for the terminal, the GUI and session.json."""
        callbacks = self.callbacks
        n = min(callbacks, self._history)
        durations_ms = self._durations_s[:n] * 1e3 if n else np.zeros(1)
        thread_cpu_ms = self._thread_cpu_s[:n] * 1e3 if n else np.zeros(1)
        block_ms = self.block_s * 1e3
        p99 = float(np.percentile(durations_ms, 99))
        return {
            "callbacks": callbacks,
            "xruns": self.xruns,
            "xruns_flagged": int(self._counters[FLAGGED_XRUNS]),
            "xruns_late": int(self._counters[LATE_XRUNS]),
            "callback_exceptions": self.exceptions,
            "callback_ms_p50": float(np.percentile(durations_ms, 50)),
            "callback_ms_p99": p99,
            "callback_ms_max": float(self._clock[MAX_DURATION_S]) * 1e3,
            "callback_load_p99": p99 / block_ms,
            "callback_cpu_ms_p50": float(np.percentile(thread_cpu_ms, 50)),
            "callback_cpu_ms_p99": float(np.percentile(thread_cpu_ms, 99)),
            "cpu_load": self.cpu_load() if cpu_load is None else cpu_load,
        }

    def cpu_load(self) -> float:
        """This process's CPU time per wall second since `reset` (meaningful in the process that
        writes; the control process reads the engine's from /proc instead)."""
        cpu0, wall0 = self._clock[PROCESS_CPU_S], self._clock[PROCESS_WALL_S]
        wall = time.perf_counter() - wall0
        return (time.process_time() - cpu0) / wall if wall > 0 else 0.0
