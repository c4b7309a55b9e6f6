"""Per-sample linear ramps of synth controls between control frames (DESIGN.md section 3).

The contract every synth part shares: after `set_targets`, a control moves linearly from its
current value to the new target over exactly `frame_samples` samples, then holds. Sample j after
the call (j = 0, 1, ...) has weight min(j + 1, frame_samples) / frame_samples on the change.
The weight depends only on a per-ramp sample counter, never on how render calls split the
samples, so output is identical for any block size.

A ramp's state is a float64[2, n] array (row 0: value at the call, row 1: change to the target)
and an int64[1] counter of samples rendered since the call, saturating at `frame_samples`.
"""

from __future__ import annotations

import numba
import numpy as np

START, CHANGE = 0, 1


class ControlRamp:
    """State of `n_controls` linear ramps that restart together at each `set_targets`."""

    def __init__(self, n_controls: int, frame_samples: int) -> None:
        self.frame_samples = frame_samples
        self.values = np.zeros((2, n_controls))
        self.counter = np.full(1, frame_samples, dtype=np.int64)

    def reset(self) -> None:
        """All controls at 0, no ramp in progress."""
        self.values[:] = 0.0
        self.counter[0] = self.frame_samples


@numba.njit(nogil=True, cache=True, inline="always")
def ramp_weight(counter: int, frame_samples: int) -> float:
    """Weight of the change at sample `counter` after the call: (counter + 1) / F, then 1."""
    if counter + 1 >= frame_samples:
        return 1.0
    return (counter + 1) / frame_samples


@numba.njit(nogil=True, cache=True, inline="always")
def ramp_current(values: np.ndarray, counter: int, frame_samples: int, index: int) -> float:
    """Value of control `index` at the last rendered sample (its start value if none yet)."""
    if counter >= frame_samples:
        return values[START, index] + values[CHANGE, index]
    return values[START, index] + values[CHANGE, index] * (counter / frame_samples)


@numba.njit(nogil=True, cache=True, inline="always")
def ramp_retarget(
    values: np.ndarray, counter: int, frame_samples: int, index: int, start: float, target: float
) -> None:
    """Point control `index` from `start` (normally `ramp_current`) towards `target`.

    The caller restarts the counter (counter[0] = 0) once every control is retargeted.
    """
    values[START, index] = start
    values[CHANGE, index] = target - start


@numba.njit(nogil=True, cache=True, inline="always")
def ramp_glide(
    values: np.ndarray, counter: int, frame_samples: int, index: int, target: float
) -> None:
    """Point control `index` from where it is now (`ramp_current`) towards `target`."""
    start = ramp_current(values, counter, frame_samples, index)
    ramp_retarget(values, counter, frame_samples, index, start, target)


@numba.njit(nogil=True, cache=True, inline="always")
def ramp_advance(counter: int, samples: int, frame_samples: int) -> int:
    """The counter after `samples` more samples (saturates at `frame_samples`)."""
    return min(counter + samples, frame_samples)
