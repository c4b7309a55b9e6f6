"""The audio thread's side of the recorder: input, mix and voices into a ring the writer drains.

`push` never blocks and never raises. A block that does not fit (the writer fell behind) is
dropped and counted; the frames lost are announced to the writer through a small gap ring
(stream position, frame count) before the next block that fits, and the writer writes zeros
in their place, so every file stays sample-aligned with the take's clock. All state lives in
arrays that may be shared memory (`recorder_layout`), so the feed runs in the engine process
and the writer in the control process.

Ring frame layout: column 0 input, 1-2 mix (left, right), 3.. one column per voice.
"""

from __future__ import annotations

import numpy as np

from engine.ring import INDEX_CELLS, SampleRing

GAP_RECORDS = 256
RECORDING, PENDING_GAP = 0, 8  # int64 cells of `recorder_state`, 64 bytes apart


def recorder_layout(capacity_frames: int, n_voices: int) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of the feed's arrays, for a shared-memory arena."""
    return [
        ("recorder_frames", (capacity_frames, 3 + n_voices), "float32"),
        ("recorder_indices", (INDEX_CELLS,), "int64"),
        ("recorder_gaps", (GAP_RECORDS, 2), "float64"),
        ("recorder_gap_indices", (INDEX_CELLS,), "int64"),
        ("recorder_state", (16,), "int64"),
    ]


class RecorderFeed:
    """Producer side (audio thread) of a take's recording, over preallocated arrays."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.ring = SampleRing(arrays["recorder_frames"], arrays["recorder_indices"])
        self.gaps = SampleRing(arrays["recorder_gaps"], arrays["recorder_gap_indices"])
        self.state = arrays["recorder_state"]
        self._gap_record = np.zeros((1, 2))

    @classmethod
    def allocate(cls, capacity_frames: int, n_voices: int) -> RecorderFeed:
        """A feed in this process's memory (the writer thread shares the process)."""
        layout = recorder_layout(capacity_frames, n_voices)
        return cls({name: np.zeros(shape, dtype=dtype) for name, shape, dtype in layout})

    @property
    def recording(self) -> bool:
        return bool(self.state[RECORDING])

    def set_recording(self, on: bool) -> None:
        self.state[RECORDING] = 1 if on else 0

    def push(self, input_block: np.ndarray, mix_block: np.ndarray, voice_block: np.ndarray,
             count: int) -> bool:
        """Queue `count` frames: input [>= count], mix [>= count, 2], voices [V, >= count].

        False when the frames were not recorded: the take has ended, or the ring was full (then
        they are counted in the ring's overflow and become zeros in the files).
        """
        if not self.state[RECORDING]:
            return False
        ring = self.ring
        state = self.state
        if state[PENDING_GAP]:
            if ring.free() < count or self.gaps.free() < 1:
                ring.reserve(count)  # refused: counted as overflow
                state[PENDING_GAP] += count
                return False
            self._gap_record[0, 0] = ring.written_frames
            self._gap_record[0, 1] = state[PENDING_GAP]
            self.gaps.write(self._gap_record, 1)
            state[PENDING_GAP] = 0
        if not ring.reserve(count):
            state[PENDING_GAP] += count
            return False
        ring.write_column(0, input_block, count)
        ring.write_frames(1, mix_block, count)
        ring.write_channels(3, voice_block, count)
        ring.commit(count)
        return True
