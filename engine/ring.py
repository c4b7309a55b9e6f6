"""A single-producer single-consumer ring of frames for handing data between threads or processes.

The producer (the audio callback, or the control process for commands) never blocks and never
allocates sample memory: frames are copied by numpy slice assignment into a preallocated
[capacity, n_channels] array, and the only objects created are short-lived slice views and
scalars (the tracemalloc peak stays flat). A block that does not fit is refused and counted in
`overflow_frames`. The consumer copies frames out with `read_into`. There is no numba kernel on
purpose: a jitted function called from Python wraps every numpy argument in a fresh NRT MemInfo
on each call, which the `NUMBA_NRT_STATS` allocation check counts.

Memory order. The state is three int64 cells in `indices`, each on its own cache line:
`indices[WRITE]` (frames ever committed, stored only by the producer), `indices[READ]` (frames
ever consumed, stored only by the consumer) and `indices[OVERFLOW]` (frames refused, producer).
The arrays may live in shared memory between two processes, which share no GIL. An aligned
int64 store is a single instruction, atomic on x86-64, and x86-64 keeps stores in program order
and loads in program order (TSO): the producer copies a block's samples first and stores
`indices[WRITE]` afterwards, hence a consumer that loads the new index also sees the samples;
the consumer copies samples out first and stores `indices[READ]` afterwards, hence the producer
never overwrites rows still being read. Each side loads the other's index once per call, so a
stale value only makes the ring look fuller (producer) or emptier (consumer) than it is, never
corrupt. A weakly ordered CPU (ARM) would need release/acquire fences here. Indices grow without
wrapping (int64: centuries of samples); the row of frame i is i % capacity.

Several sources fill one frame row without a temporary: `reserve(count)`, then one
`write_column` / `write_frames` / `write_channels` per source into its columns, then
`commit(count)`.
"""

from __future__ import annotations

import numpy as np

WRITE, READ, OVERFLOW = 0, 8, 16  # int64 cells, 64 bytes apart
INDEX_CELLS = 24


class SampleRing:
    """Lock-free SPSC ring over `buffer` [capacity_frames, n_channels] and `indices` [24] int64.

    Both arrays may be views of shared memory (see the module docstring); `allocate` makes
    process-local ones.
    """

    def __init__(self, buffer: np.ndarray, indices: np.ndarray) -> None:
        if buffer.ndim != 2 or buffer.shape[0] < 1 or buffer.shape[1] < 1:
            raise ValueError(f"ring needs a [capacity >= 1, channels >= 1] buffer, got {buffer.shape}")
        if indices.shape != (INDEX_CELLS,) or indices.dtype != np.int64:
            raise ValueError(f"ring needs int64 indices of shape ({INDEX_CELLS},)")
        self.capacity_frames = int(buffer.shape[0])
        self.n_channels = int(buffer.shape[1])
        self._buffer = buffer
        self._indices = indices
        self._reserved = 0  # producer-local: frames reserved by the last successful reserve()

    @classmethod
    def allocate(cls, capacity_frames: int, n_channels: int, dtype: type = np.float32) -> SampleRing:
        """A ring in this process's memory."""
        if capacity_frames < 1 or n_channels < 1:
            raise ValueError(
                f"ring needs capacity_frames >= 1 and n_channels >= 1, "
                f"got {capacity_frames} and {n_channels}"
            )
        return cls(np.zeros((capacity_frames, n_channels), dtype=dtype), np.zeros(INDEX_CELLS, dtype=np.int64))

    @property
    def overflow_frames(self) -> int:
        """Frames refused because the ring was full."""
        return int(self._indices[OVERFLOW])

    @property
    def written_frames(self) -> int:
        """Frames ever committed (the stream position of the next frame written)."""
        return int(self._indices[WRITE])

    @property
    def read_frames(self) -> int:
        """Frames ever consumed (the stream position of the next frame read)."""
        return int(self._indices[READ])

    # Producer side (the audio thread): no allocation, no blocking.

    def free(self) -> int:
        """Frames the producer can write now."""
        return self.capacity_frames - (self.written_frames - self.read_frames)

    def reserve(self, count: int) -> bool:
        """Claim `count` rows for the write_* calls; False (and counted) if they don't fit."""
        if count > self.capacity_frames - (self.written_frames - self.read_frames):
            self._indices[OVERFLOW] += count
            self._reserved = 0
            return False
        self._reserved = count
        return True

    def write_column(self, column: int, source: np.ndarray, count: int, offset: int = 0) -> None:
        """Copy source[offset:offset+count] (1-D) into one column of the reserved rows."""
        self._check_source(source.shape[0], offset, count)
        row = self.written_frames % self.capacity_frames
        first = min(count, self.capacity_frames - row)
        self._buffer[row:row + first, column] = source[offset:offset + first]
        if first < count:
            self._buffer[:count - first, column] = source[offset + first:offset + count]

    def write_frames(self, column: int, source: np.ndarray, count: int, offset: int = 0) -> None:
        """Copy source[offset:offset+count, :] ([frames, k]) into columns column..column+k."""
        self._check_source(source.shape[0], offset, count)
        end_column = column + source.shape[1]
        row = self.written_frames % self.capacity_frames
        first = min(count, self.capacity_frames - row)
        self._buffer[row:row + first, column:end_column] = source[offset:offset + first]
        if first < count:
            self._buffer[:count - first, column:end_column] = source[offset + first:offset + count]

    def write_channels(self, column: int, source: np.ndarray, count: int, offset: int = 0) -> None:
        """Copy source[:, offset:offset+count] ([k, frames], voice rows) into columns column..+k."""
        self._check_source(source.shape[1], offset, count)
        end_column = column + source.shape[0]
        row = self.written_frames % self.capacity_frames
        first = min(count, self.capacity_frames - row)
        self._buffer[row:row + first, column:end_column] = source[:, offset:offset + first].T
        if first < count:
            rest = source[:, offset + first:offset + count]
            self._buffer[:count - first, column:end_column] = rest.T

    def commit(self, count: int) -> None:
        """Publish the `count` reserved rows to the consumer (after their data is written)."""
        self._check_reserved(count)
        self._reserved = 0
        self._indices[WRITE] += count

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

    def clear(self) -> None:
        """Empty the ring and its overflow count (only while neither side is using it)."""
        self._indices[WRITE] = self._indices[READ] = self._indices[OVERFLOW] = 0

    # Consumer side (a background thread).

    def available(self) -> int:
        """Frames committed and not yet read."""
        return self.written_frames - self.read_frames

    def read_all(self) -> np.ndarray:
        """Every committed frame not yet read, in a new array (never on the audio thread)."""
        out = np.zeros((self.available(), self.n_channels), dtype=self._buffer.dtype)
        return out[: self.read_into(out, len(out))]

    def read_into(self, dest: np.ndarray, max_frames: int) -> int:
        """Move up to max_frames (and len(dest)) committed frames into dest[:n]; returns n."""
        n = min(self.written_frames - self.read_frames, max_frames, dest.shape[0])
        if n <= 0:
            return 0
        row = self.read_frames % self.capacity_frames
        first = min(n, self.capacity_frames - row)
        dest[:first] = self._buffer[row:row + first]
        if first < n:
            dest[first:n] = self._buffer[:n - first]
        self._indices[READ] += n
        return n
