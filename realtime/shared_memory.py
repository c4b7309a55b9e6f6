"""One block of shared memory holding every array the engine and control processes share.

The control process creates the arena before the engine process starts (nothing is allocated
once the stream runs); the engine process attaches to it by name with the same layout. Each
array starts on a 64-byte boundary (its own cache line, and int64 cells are naturally aligned,
so a single store is atomic on x86-64).

Python 3.11's `SharedMemory(name=...)` registers the block with the attaching process's resource
tracker as if it owned it, and that tracker unlinks it when the child exits: the control
process's arrays would vanish under it. `attach` unregisters it there; only the creator unlinks.
"""

from __future__ import annotations

from multiprocessing import resource_tracker, shared_memory

import numpy as np

ALIGN_BYTES = 64
Layout = tuple[tuple[str, tuple[int, ...], str], ...]


def _offsets(layout: Layout) -> tuple[dict[str, int], int]:
    offsets, position = {}, 0
    for name, shape, dtype in layout:
        if name in offsets:
            raise ValueError(f"shared array {name!r} appears twice in the layout")
        offsets[name] = position
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        position += -(-max(size, 1) // ALIGN_BYTES) * ALIGN_BYTES
    return offsets, position


class SharedArena:
    """Named numpy arrays over one SharedMemory block; `arrays[name]` is a view into it."""

    def __init__(self, memory: shared_memory.SharedMemory, layout: Layout, owner: bool) -> None:
        self._memory = memory
        self.layout = layout
        self.owner = owner
        offsets, _ = _offsets(layout)
        self.arrays = {
            name: np.ndarray(shape, dtype=dtype, buffer=memory.buf, offset=offsets[name])
            for name, shape, dtype in layout
        }

    @property
    def name(self) -> str:
        return self._memory.name

    @classmethod
    def create(cls, layout: Layout) -> SharedArena:
        """A new zero-filled arena (the control process; it unlinks it in `close`)."""
        _, size = _offsets(layout)
        memory = shared_memory.SharedMemory(create=True, size=max(size, ALIGN_BYTES))
        memory.buf[:size] = bytes(size)
        return cls(memory, tuple(layout), owner=True)

    @classmethod
    def attach(cls, name: str, layout: Layout) -> SharedArena:
        """Map an existing arena (the engine process), without adopting it in the resource tracker."""
        memory = shared_memory.SharedMemory(name=name)
        resource_tracker.unregister(memory._name, "shared_memory")  # noqa: SLF001 (see module docstring)
        return cls(memory, tuple(layout), owner=False)

    def close(self) -> None:
        """Drop the views and unmap; the owner also unlinks the block."""
        self.arrays.clear()
        try:
            self._memory.close()
        except BufferError:  # a view still exported elsewhere in this process: unmapped at exit
            pass
        if self.owner:
            try:
                self._memory.unlink()
            except FileNotFoundError:
                pass
