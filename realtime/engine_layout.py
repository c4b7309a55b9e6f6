"""What the engine process and the control process share: one arena, laid out from the config.

Everything is allocated by the control process before the engine process starts: the
processor's arrays (mixer parameters, faults, the kind each voice plays, analysis history,
control bus), telemetry, the command ring, the recorder feed and a few engine state cells.
"""

from __future__ import annotations

from engine.config import TuttiConfig
from engine.processor import processor_layout
from realtime.commands import command_layout
from realtime.recorder_feed import recorder_layout
from realtime.shared_memory import Layout
from realtime.telemetry import telemetry_layout

RECORDER_RING_S = 10.0

# int64 cells of "engine_state", 64 bytes apart. STOP is written by the control process, the
# rest by the engine process.
STATE, STOP, FILE_POSITION = 0, 8, 16
STARTING, RUNNING, STOPPED = 0, 1, 2
GO_ON, STOP_STREAM, ABANDON_STREAM = 0, 1, 2   # ABANDON: the device is gone, stop() would hang


def engine_layout(config: TuttiConfig) -> Layout:
    """The arena's layout for `config` (the same in both processes)."""
    ring_frames = round(RECORDER_RING_S * config.engine.sample_rate_hz)
    return tuple(
        processor_layout(config)
        + telemetry_layout()
        + command_layout()
        + recorder_layout(ring_frames, len(config.voices))
        + [("engine_state", (32,), "int64")]
    )
