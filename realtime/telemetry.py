"""Always-on callback telemetry: durations, xruns (flags and late arrivals), deadline misses.

The audio thread calls `record_callback` with two clock readings and the status flag; it only
stores floats into preallocated arrays and bumps counters. Any other thread reads a
`snapshot()` (percentiles are computed there, never on the audio thread).
"""

from __future__ import annotations

import time

import numpy as np

LATE_FACTOR = 1.5  # a callback arriving more than 1.5 blocks after the previous is an xrun


class CallbackTelemetry:
    """Counters and a ring of recent callback durations for one stream."""

    def __init__(self, block_samples: int, sample_rate_hz: int, history: int = 8192) -> None:
        self.block_s = block_samples / sample_rate_hz
        self._durations_s = np.zeros(history)
        self._history = history
        self.callbacks = 0
        self.flagged_xruns = 0
        self.late_xruns = 0
        self.max_duration_s = 0.0
        self._last_arrival_s = -1.0
        self._process_time0 = time.process_time()
        self._wall_time0 = time.perf_counter()

    def record_callback(self, arrival_s: float, finished_s: float, status_flagged: bool) -> None:
        """Audio thread: log one callback (perf_counter readings at entry and exit)."""
        duration = finished_s - arrival_s
        self._durations_s[self.callbacks % self._history] = duration
        if duration > self.max_duration_s:
            self.max_duration_s = duration
        if status_flagged:
            self.flagged_xruns += 1
        elif self._last_arrival_s >= 0.0 and arrival_s - self._last_arrival_s > LATE_FACTOR * self.block_s:
            self.late_xruns += 1
        self._last_arrival_s = arrival_s
        self.callbacks += 1

    @property
    def last_arrival_s(self) -> float:
        return self._last_arrival_s

    @property
    def xruns(self) -> int:
        return self.flagged_xruns + self.late_xruns

    def snapshot(self) -> dict[str, float]:
        """Percentiles and counters for the terminal, the GUI and session.json."""
        n = min(self.callbacks, self._history)
        durations_ms = self._durations_s[:n] * 1e3 if n else np.zeros(1)
        wall = time.perf_counter() - self._wall_time0
        return {
            "callbacks": self.callbacks,
            "xruns": self.xruns,
            "xruns_flagged": self.flagged_xruns,
            "xruns_late": self.late_xruns,
            "callback_ms_p50": float(np.percentile(durations_ms, 50)),
            "callback_ms_p99": float(np.percentile(durations_ms, 99)),
            "callback_ms_max": self.max_duration_s * 1e3,
            "callback_load_p99": float(np.percentile(durations_ms, 99)) / (self.block_s * 1e3),
            "cpu_load": (time.process_time() - self._process_time0) / wall if wall > 0 else 0.0,
        }
