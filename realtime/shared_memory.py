"""One block of shared memory holding every array the engine and control processes share.

The control process creates the arena before the engine process starts (nothing is allocated
once the stream runs); the engine process attaches to it by name with the same layout. Each
array starts on a 64-byte boundary (its own cache line, and int64 cells are naturally aligned,
so a single store is atomic on x86-64).

Python 3.11's `SharedMemory(name=...)` registers the block with the attaching process's resource
tracker as if it owned it. A process that multiprocessing spawned shares its parent's tracker, so
the registration is the one the creator made (a set: nothing changes), and unregistering it there
would drop the creator's, whose unlink would then upset the tracker. Any other process has a
tracker of its own that would unlink the block when that process exits, under the creator's
feet: `attach` unregisters it there. Only the creator unlinks.
"""

from __future__ import annotations

import multiprocessing
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
        if multiprocessing.parent_process() is None:  # not sharing the creator's tracker
            resource_tracker.unregister(memory._name, "shared_memory")  # noqa: SLF001 (see module docstring)
        return cls(memory, tuple(layout), owner=False)

    def close(self) -> None:
        """Forget the block: the owner unlinks its name. The mapping itself goes when the last
        view of it is garbage (unmapping under a live numpy view would make it read garbage)."""
        self.arrays = {}
        if self.owner:
            try:
                self._memory.unlink()
            except FileNotFoundError:
                pass
