"""Allocation-free copies the audio callback makes between PortAudio's buffers and ours."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def copy_input_column(indata: np.ndarray, dest: np.ndarray, count: int) -> None:
    """dest[:count] = indata[:count, 0] (the first input channel)."""
    for i in range(count):
        dest[i] = indata[i, 0]


@numba.njit(nogil=True, cache=True)
def copy_from_file(source: np.ndarray, position: int, loop: bool, dest: np.ndarray, count: int) -> int:
    """Fill dest[:count] from `source` at `position` (zeros after the end unless looping)."""
    n = source.shape[0]
    for i in range(count):
        if position >= n and loop:
            position = 0
        dest[i] = source[position] if position < n else 0.0
        position += 1
    return position


@numba.njit(nogil=True, cache=True)
def copy_mix_out(mix: np.ndarray, outdata: np.ndarray, count: int) -> None:
    """outdata[:count] = the stereo mix (a mono device gets the left channel)."""
    channels = outdata.shape[1]
    for i in range(count):
        for c in range(channels):
            outdata[i, c] = mix[i, min(c, 1)]
