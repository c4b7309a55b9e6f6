"""A small feedback-delay-network reverb, processed in place, block-size invariant.

Topology: 8 delay lines of mutually prime lengths (primes near 30-60 ms, jittered by the seed
so voices do not share a comb pattern), an orthogonal Hadamard feedback matrix (a fast
Walsh-Hadamard transform), and per line a gain and a one-pole low-pass (Jot's absorption) so
that each pass loses 60 dB per `decay_s` at low frequencies and per `high_decay_ratio *
decay_s` at Nyquist, highs dying sooner as in a room; a broadband impulse response decays
60 dB in about 0.85-0.9 `decay_s`. The network's input passes a 10 Hz DC blocker, so an offset
on the dry signal cannot build up in the loop. Output: dry * (1 - wet) + wet * reverb, where
the reverb path has at most unit energy gain (about 0.7 with the default damping); wet = 0 is
a bypass. Values under 1e-15 are flushed to zero, so a silent input leaves exact silence after
the tail and the loop never runs on denormals.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from engine.synth.rng import rng_state, rng_uniform

_LINES = 8
_LINE_MS = (29.7, 33.1, 37.3, 41.9, 44.3, 48.7, 53.3, 57.1)
_JITTER = 0.04  # each length moves by up to +-4 % with the seed
_DC_BLOCK_HZ = 10.0
_FLUSH = 1e-15
_IN_SIGN, _OUT_SIGN, _GAIN, _DAMPING = 0, 1, 2, 3  # rows of the per-line coefficients
# state slots: 8 low-pass states, the DC blocker's input and output, 8 scratch taps
_DC_IN, _DC_OUT, _TAPS = _LINES, _LINES + 1, _LINES + 2


@numba.njit(nogil=True, cache=True, inline="always")
def _flush(value: float) -> float:
    return value if abs(value) >= _FLUSH else 0.0


@numba.njit(nogil=True, cache=True)
def _process(
    buf: np.ndarray,
    offset: int,
    count: int,
    lines: np.ndarray,
    lengths: np.ndarray,
    positions: np.ndarray,
    coefficients: np.ndarray,
    state: np.ndarray,
    dc_pole: float,
    wet: float,
) -> None:
    """Reverberate buf[offset:offset + count] in place."""
    taps = state[_TAPS : _TAPS + _LINES]
    for i in range(count):
        dry = buf[offset + i]
        blocked = _flush(dry - state[_DC_IN] + dc_pole * state[_DC_OUT])
        state[_DC_IN] = dry
        state[_DC_OUT] = blocked
        reverb = 0.0
        for line in range(_LINES):
            out = lines[line, positions[line]]
            reverb += coefficients[_OUT_SIGN, line] * out
            low = _flush(out + coefficients[_DAMPING, line] * (state[line] - out))
            state[line] = low
            taps[line] = low
        # Fast Walsh-Hadamard transform of the 8 taps (scaled to be orthogonal below).
        width = 1
        while width < _LINES:
            for start in range(0, _LINES, 2 * width):
                for j in range(start, start + width):
                    a = taps[j]
                    b = taps[j + width]
                    taps[j] = a + b
                    taps[j + width] = a - b
            width *= 2
        for line in range(_LINES):
            feedback = (
                coefficients[_GAIN, line] * taps[line] + coefficients[_IN_SIGN, line] * blocked
            )
            lines[line, positions[line]] = _flush(feedback)
            positions[line] += 1
            if positions[line] == lengths[line]:
                positions[line] = 0
        buf[offset + i] = dry * (1.0 - wet) + wet * reverb


def _next_prime(n: int) -> int:
    candidate = max(n, 2)
    while any(candidate % d == 0 for d in range(2, int(math.isqrt(candidate)) + 1)):
        candidate += 1
    return candidate


class Reverb:
    """Mono FDN reverb: `decay_s` RT60 (low frequencies), `wet` mix (0..1), `high_decay_ratio`
    RT60 at Nyquist relative to decay_s, line lengths and signs picked by `seed`."""

    def __init__(
        self,
        sample_rate_hz: int,
        decay_s: float = 1.5,
        wet: float = 0.2,
        seed: int = 0,
        high_decay_ratio: float = 0.5,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.decay_s = decay_s
        self.wet = wet
        rng = rng_state(seed)
        lengths: list[int] = []
        for ms in _LINE_MS:
            jitter = 1.0 + _JITTER * (2.0 * rng_uniform(rng) - 1.0)
            prime = _next_prime(int(ms * jitter * sample_rate_hz / 1000.0))
            while prime in lengths:
                prime = _next_prime(prime + 1)
            lengths.append(prime)
        self._lengths = np.array(lengths, dtype=np.int64)
        self._lines = np.zeros((_LINES, max(lengths)))
        self._positions = np.zeros(_LINES, dtype=np.int64)
        self._state = np.zeros(2 * _LINES + 2)
        gains = 10.0 ** (-3.0 * self._lengths / (sample_rate_hz * decay_s))
        high_gains = gains ** (1.0 / high_decay_ratio)
        signs = np.array(
            [[1.0 if rng_uniform(rng) < 0.5 else -1.0 for _ in range(_LINES)] for _ in range(2)]
        )
        self._coefficients = np.empty((4, _LINES))
        self._coefficients[_IN_SIGN] = signs[0] / math.sqrt(_LINES)
        # The loop keeps about mean(gain^2) of its energy per pass: scale the output so an
        # impulse's tail carries about the impulse's energy.
        self._coefficients[_OUT_SIGN] = signs[1] * math.sqrt(1.0 - np.mean(gains**2))
        self._coefficients[_GAIN] = gains / math.sqrt(_LINES)
        # One-pole low-pass with DC gain 1 and Nyquist gain high_gains / gains.
        self._coefficients[_DAMPING] = (gains - high_gains) / (gains + high_gains)
        self._dc_pole = 1.0 - 2.0 * math.pi * _DC_BLOCK_HZ / sample_rate_hz

    @property
    def delay_samples(self) -> np.ndarray:
        """The eight delay-line lengths in samples (distinct primes)."""
        return self._lengths.copy()

    def process(self, buf: np.ndarray, offset: int, count: int) -> None:
        """Replace buf[offset:offset + count] (float32 or float64) by dry*(1-wet) + wet*reverb."""
        _process(buf, offset, count, *self.kernel_state)

    @property
    def kernel_state(self) -> tuple:
        """What `_process` takes after (buf, offset, count), for a kernel that runs the reverb
        inside a larger compiled call (engine/mixer.py)."""
        return (self._lines, self._lengths, self._positions, self._coefficients, self._state,
                self._dc_pole, self.wet)

    def reset(self) -> None:
        """Empty the delay lines and filters."""
        self._lines[:] = 0.0
        self._positions[:] = 0
        self._state[:] = 0.0
