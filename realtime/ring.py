"""A single-producer single-consumer ring of float32 frames for handing audio off the audio thread.

The producer (the audio callback) never blocks and never allocates sample memory: frames are
copied by numpy slice assignment into a preallocated [capacity, n_channels] float32 array, and
the only objects created are short-lived slice views (the tracemalloc peak stays flat). A block
that does not fit is refused and counted in `overflow_frames`. The consumer (a background
thread) copies frames out with `read_into`. There is no numba kernel on purpose: a jitted
function called from Python wraps every numpy argument in a fresh NRT MemInfo on each call,
which the `NUMBA_NRT_STATS` allocation check counts.

Memory order. Two plain Python ints carry the state: `_write_index` (frames ever committed,
stored only by the producer) and `_read_index` (frames ever consumed, stored only by the
consumer). Both grow without wrapping; the row of frame i is i % capacity. CPython (with the GIL)
stores an attribute atomically, and every GIL hand-over is a full barrier between threads, so:
the producer copies a block's samples first and stores `_write_index` afterwards, hence a
consumer that sees the new index also sees the samples; the consumer copies samples out first
and stores `_read_index` afterwards, hence the producer never overwrites rows still being read.
Each side reads the other's index once per call, so a stale value only makes the ring look
fuller (producer) or emptier (consumer) than it is, never corrupt. A free-threaded build
(no GIL) would need real atomics here.

Several sources fill one frame row without a temporary: `reserve(count)`, then one
`write_column` / `write_frames` / `write_channels` per source into its columns, then
`commit(count)`.
"""

from __future__ import annotations

import numpy as np


class SampleRing:
    """Lock-free SPSC ring of float32 frames, [capacity_frames, n_channels], preallocated."""

    def __init__(self, capacity_frames: int, n_channels: int) -> None:
        if capacity_frames < 1 or n_channels < 1:
            raise ValueError(
                f"ring needs capacity_frames >= 1 and n_channels >= 1, "
                f"got {capacity_frames} and {n_channels}"
            )
        self.capacity_frames = int(capacity_frames)
        self.n_channels = int(n_channels)
        self._buffer = np.zeros((self.capacity_frames, self.n_channels), dtype=np.float32)
        self._write_index = 0  # producer-owned: frames committed
        self._read_index = 0  # consumer-owned: frames consumed
        self._reserved = 0  # producer-owned: frames reserved by the last successful reserve()
        self.overflow_frames = 0  # producer-owned: frames refused because the ring was full

    # Producer side (the audio thread): no allocation, no blocking.

    def free(self) -> int:
        """Frames the producer can write now."""
        return self.capacity_frames - (self._write_index - self._read_index)

    def reserve(self, count: int) -> bool:
        """Claim `count` rows for the write_* calls; False (and counted) if they don't fit."""
        if count > self.capacity_frames - (self._write_index - self._read_index):
            self.overflow_frames += count
            self._reserved = 0
            return False
        self._reserved = count
        return True

    def write_column(self, column: int, source: np.ndarray, count: int, offset: int = 0) -> None:
        """Copy source[offset:offset+count] (1-D) into one column of the reserved rows."""
        self._check_source(source.shape[0], offset, count)
        row = self._write_index % self.capacity_frames
        first = min(count, self.capacity_frames - row)
        self._buffer[row:row + first, column] = source[offset:offset + first]
        if first < count:
            self._buffer[:count - first, column] = source[offset + first:offset + count]

    def write_frames(self, column: int, source: np.ndarray, count: int, offset: int = 0) -> None:
        """Copy source[offset:offset+count, :] ([frames, k]) into columns column..column+k."""
        self._check_source(source.shape[0], offset, count)
        end_column = column + source.shape[1]
        row = self._write_index % self.capacity_frames
        first = min(count, self.capacity_frames - row)
        self._buffer[row:row + first, column:end_column] = source[offset:offset + first]
        if first < count:
            self._buffer[:count - first, column:end_column] = source[offset + first:offset + count]

    def write_channels(self, column: int, source: np.ndarray, count: int, offset: int = 0) -> None:
        """Copy source[:, offset:offset+count] ([k, frames], voice rows) into columns column..+k."""
        self._check_source(source.shape[1], offset, count)
        end_column = column + source.shape[0]
        row = self._write_index % self.capacity_frames
        first = min(count, self.capacity_frames - row)
        self._buffer[row:row + first, column:end_column] = source[:, offset:offset + first].T
        if first < count:
            rest = source[:, offset + first:offset + count]
            self._buffer[:count - first, column:end_column] = rest.T

    def commit(self, count: int) -> None:
        """Publish the `count` reserved rows to the consumer (after their data is written)."""
        self._check_reserved(count)
        self._reserved = 0
        self._write_index += count

    def write(self, block: np.ndarray, count: int) -> bool:
        """Append block[:count] ([frames, n_channels]); False (and counted) if it does not fit."""
        if not self.reserve(count):
            return False
        self.write_frames(0, block, count)
        self.commit(count)
        return True

    def _check_reserved(self, count: int) -> None:
        if count > self._reserved:
            raise ValueError(f"ring: {count} frames used but only {self._reserved} reserved")

    def _check_source(self, source_frames: int, offset: int, count: int) -> None:
        """Refuse a short source (numpy would broadcast a single frame silently)."""
        self._check_reserved(count)
        if offset < 0 or offset + count > source_frames:
            raise ValueError(
                f"ring: a source of {source_frames} frames has no frames {offset}..{offset + count}"
            )

    # Consumer side (a background thread).

    def available(self) -> int:
        """Frames committed and not yet read."""
        return self._write_index - self._read_index

    def read_into(self, dest: np.ndarray, max_frames: int) -> int:
        """Move up to max_frames (and len(dest)) committed frames into dest[:n]; returns n."""
        n = min(self._write_index - self._read_index, max_frames, dest.shape[0])
        if n <= 0:
            return 0
        row = self._read_index % self.capacity_frames
        first = min(n, self.capacity_frames - row)
        dest[:first] = self._buffer[row:row + first]
        if first < n:
            dest[first:n] = self._buffer[:n - first]
        self._read_index += n
        return n
