"""The command ring: what the control process asks the engine to do at the start of a block.

Mixer parameters need no command (they are plain floats in shared memory, last write wins);
a command is for what must happen on the audio thread at a block boundary: panic (fade out,
mute, reset the voices) and swapping the kind a voice plays. Each command is one float64
record (opcode, voice, argument, spare) in an SPSC `SampleRing`; the control process's threads
(console, MIDI, later the GUI) share the producer side under a lock, the audio thread is the
only consumer. A full ring refuses the command and counts it: the sender reports it, nothing
ever waits.
"""

from __future__ import annotations

import threading

import numpy as np

from engine.ring import INDEX_CELLS, SampleRing

COMMAND_SLOTS = 256
PANIC, SWAP = 1.0, 2.0


def command_layout() -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of the command ring's arrays, for a shared-memory arena."""
    return [("commands", (COMMAND_SLOTS, 4), "float64"), ("command_indices", (INDEX_CELLS,), "int64")]


class CommandSender:
    """Producer side (control process, any thread)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._ring = SampleRing(arrays["commands"], arrays["command_indices"])
        self._record = np.zeros((1, 4))
        self._lock = threading.Lock()

    def send(self, opcode: float, voice: int = 0, argument: int = 0) -> bool:
        """Queue one command; False (and counted in `dropped`) when the ring is full."""
        with self._lock:
            self._record[0] = (opcode, voice, argument, 0.0)
            return self._ring.write(self._record, 1)

    @property
    def dropped(self) -> int:
        return self._ring.overflow_frames


class CommandReader:
    """Consumer side (the audio thread): applies queued commands to a processor."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._ring = SampleRing(arrays["commands"], arrays["command_indices"])
        self._record = np.zeros((1, 4))

    def apply_pending(self, processor) -> int:  # noqa: ANN001 (engine.processor.BlockProcessor)
        """Apply every queued command at this block boundary; returns how many."""
        applied = 0
        record = self._record
        while self._ring.read_into(record, 1):
            opcode = record[0, 0]
            if opcode == PANIC:
                processor.request_panic()
            elif opcode == SWAP:
                processor.swap_voice_to(int(record[0, 1]), int(record[0, 2]))
            applied += 1
        return applied
