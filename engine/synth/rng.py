"""A small deterministic random generator for numba kernels (xorshift64*), seeded by splitmix64.

np.random inside numba has one global state per thread, so two voices would disturb each
other's sequences; each synth part instead owns a uint64[1] state array, and the same seed
always gives the same samples on every machine.
"""

from __future__ import annotations

import numba
import numpy as np

_MASK64 = (1 << 64) - 1


def rng_state(seed: int) -> np.ndarray:
    """A fresh uint64[1] generator state for `seed` (any int; splitmix64 avoids the zero state)."""
    z = (seed + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return np.array([z or 1], dtype=np.uint64)


@numba.njit(nogil=True, cache=True, inline="always")
def rng_uniform(state: np.ndarray) -> float:
    """Next value, uniform in [0, 1) with 53 random bits; advances `state` in place."""
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    return float((x * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(11)) * (1.0 / 9007199254740992.0)
