"""Feature analysis v1, the live numba twin of `reference.py` (same definitions, tested equal).

`StreamingAnalyzer` keeps the last `history` input samples in a linear buffer whose newest
frame occupies the tail; pushed samples go into that tail and a frame analyses the buffer, then
shifts it left by one hop. Every constant, size and table comes from the reference (`spec.`),
every transform from the shared kernels of `engine.fft`.

The state is one `AnalyzerState`, a numba structref: a single memory block with a named field
for each table, scratch array (per transform: `ComplexFFT`, `RealFFT`), size and the history.
The kernels Python calls take the state's address, an int, and `_state_at` turns it back into
the structref inside the call (a reference count, no allocation). They do not take the state
itself because numba types and unboxes a structref argument through three attribute lookups by
a newly made name string (`_numba_type_`, `_code`, `_meminfo`), which CPython 3.11's type
attribute cache keeps: kilobytes of traced memory coming and going, and about 1.4 us per call
more than an int. The analyzer owns the state for as long as it uses the address.

One compiled call per block: `push_frame` appends a block's samples and, when they complete the
frame, computes the 16 features in the same call. The pending-sample count is a one-element
array in the state, so Python reads `pending` (callers split blocks at frame edges with it)
without a call. After construction (which loads every kernel from numba's on-disk cache, or
compiles it once, and warms it), `push`, `push_frame` and `compute_frame` allocate nothing but
the one small record numba makes for each array argument of a call (the block, `out`).

The YIN difference function is computed through FFTs, d(tau) = e_now + e_lag(tau) - 2 r(tau),
with r the cross-correlation of the current window with the span, instead of the reference's
direct sums (about 0.04 ms instead of 0.14 ms, vectorised, per 48 kHz frame here); the
reference's rounding floor makes both agree on silence and DC.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba.core import cgutils, types
from numba.experimental import structref
from numba.extending import intrinsic

from engine.features import reference as spec
from engine.features.frames import CHROMA, F0, LOUDNESS, N_FEATURES, ONSET, VOICING, FeatureFrames
from engine.fft import FFTTables, fft_dif, fft_dit, merge_real_spectrum, split_real_spectrum
from engine.rates import DEFAULT_BLOCK_SAMPLES

_JIT = {"nogil": True, "cache": True}
# Module constants are frozen into the kernels at compile time.
_CHROMA_START = CHROMA.start
_LOUDNESS_FLOOR = spec.power_floor(spec.LOUDNESS_FLOOR_DB)
_CHROMA_FLOOR = spec.power_floor(spec.CHROMA_FLOOR_DB)


class ComplexFFT(NamedTuple):
    """Tables and scratch for an in-place `engine.fft` transform of `len(re)` complex points."""

    twiddles: np.ndarray  # float64[2, >= n - 1]: FFTTables(n or larger).twiddles
    bitrev: np.ndarray  # int64[n]: FFTTables(n).bitrev
    re: np.ndarray  # float64[n] scratch
    im: np.ndarray  # float64[n] scratch


class RealFFT(NamedTuple):
    """An FFT of `n` real points: an n/2-point complex FFT plus `engine.fft`'s split step."""

    half: ComplexFFT  # twiddles of FFTTables(n), bitrev of n/2 points (bitrev_half)
    spec_re: np.ndarray  # float64[n/2 + 1]: bins 0..n/2 (input of an inverse, or output)
    spec_im: np.ndarray


@structref.register
class AnalyzerStateType(types.StructRef):
    """numba type of `AnalyzerState` (one instance type, `_STATE_TYPE`, for every rate)."""


class AnalyzerState(structref.StructRefProxy):
    """Python owner of one analyzer's state (made by `_make_state`; kernels read its fields)."""

    __slots__ = ()


structref.define_boxing(AnalyzerStateType, AnalyzerState)

_FLOATS = types.Array(types.float64, 1, "C")
_INTS = types.Array(types.int64, 1, "C")
_COMPLEX_FFT = types.NamedTuple(
    (types.Array(types.float64, 2, "C"), _INTS, _FLOATS, _FLOATS), ComplexFFT
)
_REAL_FFT = types.NamedTuple((_COMPLEX_FFT, _FLOATS, _FLOATS), RealFFT)
# Field types are fixed here (C-contiguous arrays, 64-bit scalars) rather than inferred from the
# first constructor call, so every kernel compiles once for all rates and f0 ranges.
_STATE_TYPE = AnalyzerStateType(
    [
        ("history", _FLOATS),  # the last sizes.history input samples, newest frame at the tail
        ("pending", _INTS),  # [samples pushed since the last frame]: an array Python reads too
        ("onset_previous", _FLOATS),  # onset levels L_k of the previous frame
        ("yin_energy", _FLOATS),  # running sum of squares over the YIN span, span + 1
        ("yin_correlation", _FLOATS),  # r(u), one per sample of the YIN FFT
        ("yin_d", _FLOATS),  # d(tau), tau 0..tau_max + 1
        ("yin_cmnd", _FLOATS),  # cmnd(tau), tau 0..tau_max + 1
        ("yin_packed", _COMPLEX_FFT),  # complex FFT of span + i * window
        ("yin_cross", _REAL_FFT),  # inverse real FFT of the cross-spectrum (same twiddles)
        ("loudness_window", _FLOATS),
        ("loudness_weights", _FLOATS),  # spec.loudness_bin_weights
        ("loudness_fft", _REAL_FFT),
        ("chroma_window", _FLOATS),
        ("chroma_classes", _INTS),  # spec.chroma_bin_classes
        ("chroma_fft", _REAL_FFT),
        ("sample_rate_hz", types.float64),
        ("onset_scale", types.float64),  # spec.onset_magnitude_scale
        ("chroma_scale", types.float64),  # spec.chroma_power_scale
        ("hop", types.int64),  # frame_samples
        ("yin_window", types.int64),
        ("tau_min", types.int64),
        ("tau_max", types.int64),
    ]
)


@numba.njit(**_JIT)
def _windowed_rfft(source: np.ndarray, end: int, window: np.ndarray, plan: RealFFT) -> None:
    """Spectrum (bins 0..n/2, into plan.spec_*) of window * source[end - len(window):end],
    zero-padded to n = 2 * len(plan.half.re)."""
    z = plan.half
    length = window.shape[0]
    start = end - length
    z.re[:] = 0.0
    z.im[:] = 0.0
    for i in range(length // 2):  # z[i] = x[2i] + i x[2i+1], loaded bit-reversed
        r = z.bitrev[i]
        z.re[r] = window[2 * i] * source[start + 2 * i]
        z.im[r] = window[2 * i + 1] * source[start + 2 * i + 1]
    if length % 2:
        z.re[z.bitrev[length // 2]] = window[length - 1] * source[end - 1]
    fft_dit(z.re, z.im, z.twiddles, -1.0)
    split_real_spectrum(z.re, z.im, z.twiddles, plan.spec_re, plan.spec_im)


@numba.njit(**_JIT)
def _inverse_rfft(plan: RealFFT, out: np.ndarray) -> None:
    """Real inverse DFT (with 1/n) of the Hermitian bins in plan.spec_*: n samples into out."""
    z = plan.half
    m = z.re.shape[0]
    merge_real_spectrum(plan.spec_re, plan.spec_im, z.twiddles, z.re, z.im)
    fft_dif(z.re, z.im, z.twiddles, 1.0)  # natural in, bit-reversed out
    scale = 1.0 / m
    for i in range(m):
        r = z.bitrev[i]
        out[2 * i] = z.re[r] * scale
        out[2 * i + 1] = z.im[r] * scale


@numba.njit(**_JIT)
def _yin_difference(
    history: np.ndarray,
    window: int,
    tau_max: int,
    packed: ComplexFFT,
    cross: RealFFT,
    energy: np.ndarray,
    correlation: np.ndarray,
    d: np.ndarray,
) -> None:
    """d[0..tau_max+1] of the reference (`yin_difference`) for the span ending history's tail.

    One complex FFT of span + i * current window gives both spectra; their cross-spectrum's
    inverse is r(u) = sum_j now[j] span[u + j]; energies come from a running sum of squares.
    """
    span_len = window + tau_max + 1
    start = history.shape[0] - span_len
    n = packed.re.shape[0]
    bitrev = packed.bitrev
    packed.re[:] = 0.0
    packed.im[:] = 0.0
    for i in range(span_len):  # loaded bit-reversed
        packed.re[bitrev[i]] = history[start + i]
    for i in range(window):
        packed.im[bitrev[i]] = history[start + span_len - window + i]
    fft_dit(packed.re, packed.im, packed.twiddles, -1.0)
    for k in range(n // 2 + 1):
        a = k
        b = n - k if k > 0 else 0
        span_re = 0.5 * (packed.re[a] + packed.re[b])
        span_im = 0.5 * (packed.im[a] - packed.im[b])
        now_re = 0.5 * (packed.im[a] + packed.im[b])
        now_im = -0.5 * (packed.re[a] - packed.re[b])
        cross.spec_re[k] = span_re * now_re + span_im * now_im
        cross.spec_im[k] = span_im * now_re - span_re * now_im
    _inverse_rfft(cross, correlation)
    energy[0] = 0.0
    for i in range(span_len):
        x = history[start + i]
        energy[i + 1] = energy[i] + x * x
    floor = spec.YIN_ROUNDING_FLOOR * energy[span_len]
    now_energy = energy[span_len] - energy[span_len - window]
    d[0] = 0.0
    for tau in range(1, tau_max + 2):
        lag_start = span_len - window - tau
        value = (
            now_energy
            + (energy[lag_start + window] - energy[lag_start])
            - 2.0 * correlation[lag_start]
        )
        d[tau] = value if value > floor else 0.0


@numba.njit(**_JIT)
def _yin(d: np.ndarray, cmnd: np.ndarray, tau_min: int, tau_max: int, sample_rate_hz: float):
    """(f0_hz, voicing) from d, as the reference's cmnd, yin_pick and parabola (cmnd: scratch)."""
    cmnd[0] = 1.0
    total = 0.0
    for tau in range(1, tau_max + 2):
        total += d[tau]
        cmnd[tau] = d[tau] * tau / total if total > 0.0 else 1.0
    best = -1
    tau = tau_min
    while tau <= tau_max:
        if cmnd[tau] < spec.YIN_THRESHOLD:
            best = tau
            while tau <= tau_max and cmnd[tau] < spec.YIN_THRESHOLD:
                if cmnd[tau] < cmnd[best]:
                    best = tau
                tau += 1
            break
        tau += 1
    if best < 0:
        best = tau_min
        for tau in range(tau_min + 1, tau_max + 1):
            if cmnd[tau] < cmnd[best]:
                best = tau
    h = max(1, min((best + 32) // 64, tau_max + 1 - best, best - 1))
    before = d[best - h]
    at = d[best]
    after = d[best + h]
    curvature = before - 2.0 * at + after
    shift = 0.0
    if curvature > 0.0:
        shift = min(1.0, max(-1.0, 0.5 * (before - after) / curvature))
    voicing = min(1.0, max(0.0, 1.0 - cmnd[best] / (2.0 * spec.YIN_THRESHOLD)))
    return sample_rate_hz / (best + h * shift), voicing


@numba.njit(**_JIT)
def _new_state(
    history: np.ndarray,
    pending: np.ndarray,
    onset_previous: np.ndarray,
    yin_energy: np.ndarray,
    yin_correlation: np.ndarray,
    yin_d: np.ndarray,
    yin_cmnd: np.ndarray,
    yin_packed: ComplexFFT,
    yin_cross: RealFFT,
    loudness_window: np.ndarray,
    loudness_weights: np.ndarray,
    loudness_fft: RealFFT,
    chroma_window: np.ndarray,
    chroma_classes: np.ndarray,
    chroma_fft: RealFFT,
    sample_rate_hz: float,
    onset_scale: float,
    chroma_scale: float,
    hop: int,
    yin_window: int,
    tau_min: int,
    tau_max: int,
) -> AnalyzerState:
    """An `AnalyzerState` holding these arrays (shared with the caller, not copied)."""
    state = structref.new(_STATE_TYPE)
    state.history = history
    state.pending = pending
    state.onset_previous = onset_previous
    state.yin_energy = yin_energy
    state.yin_correlation = yin_correlation
    state.yin_d = yin_d
    state.yin_cmnd = yin_cmnd
    state.yin_packed = yin_packed
    state.yin_cross = yin_cross
    state.loudness_window = loudness_window
    state.loudness_weights = loudness_weights
    state.loudness_fft = loudness_fft
    state.chroma_window = chroma_window
    state.chroma_classes = chroma_classes
    state.chroma_fft = chroma_fft
    state.sample_rate_hz = sample_rate_hz
    state.onset_scale = onset_scale
    state.chroma_scale = chroma_scale
    state.hop = hop
    state.yin_window = yin_window
    state.tau_min = tau_min
    state.tau_max = tau_max
    return state


def _real_fft(n: int) -> RealFFT:
    """Tables and zeroed scratch of an n-point real FFT, n >= 8."""
    tables = FFTTables(n)
    half = ComplexFFT(tables.twiddles, tables.bitrev_half, np.zeros(n // 2), np.zeros(n // 2))
    return RealFFT(half, np.zeros(n // 2 + 1), np.zeros(n // 2 + 1))


def _make_state(sizes: spec.AnalysisSizes, pending: np.ndarray) -> AnalyzerState:
    """A silent state for `sizes`, with `pending` (int64[1], zero) as its pending count."""
    yin_fft = spec.next_pow2(sizes.yin_span)
    yin_cross = _real_fft(yin_fft)
    yin_packed = ComplexFFT(  # n complex points: the real FFT's twiddles serve it
        yin_cross.half.twiddles, FFTTables(yin_fft).bitrev, np.zeros(yin_fft), np.zeros(yin_fft)
    )
    return _new_state(
        history=np.zeros(sizes.history),
        pending=pending,
        onset_previous=np.zeros(spec.onset_bin_count(sizes)),
        yin_energy=np.zeros(sizes.yin_span + 1),
        yin_correlation=np.zeros(yin_fft),
        yin_d=np.zeros(sizes.tau_max + 2),
        yin_cmnd=np.zeros(sizes.tau_max + 2),
        yin_packed=yin_packed,
        yin_cross=yin_cross,
        loudness_window=np.ascontiguousarray(spec.hann(sizes.loudness_window), dtype=np.float64),
        loudness_weights=np.ascontiguousarray(spec.loudness_bin_weights(sizes), dtype=np.float64),
        loudness_fft=_real_fft(sizes.loudness_fft),
        chroma_window=np.ascontiguousarray(spec.hann(sizes.chroma_window), dtype=np.float64),
        chroma_classes=np.ascontiguousarray(spec.chroma_bin_classes(sizes), dtype=np.int64),
        chroma_fft=_real_fft(sizes.chroma_fft),
        sample_rate_hz=float(sizes.sample_rate_hz),
        onset_scale=float(spec.onset_magnitude_scale(sizes)),
        chroma_scale=float(spec.chroma_power_scale(sizes)),
        hop=sizes.frame_samples,
        yin_window=sizes.yin_window,
        tau_min=sizes.tau_min,
        tau_max=sizes.tau_max,
    )


@intrinsic
def _address_of(typingctx, state):
    """The address of `state`'s memory block (its NRT meminfo), as an intp."""
    if state != _STATE_TYPE:
        return None

    def codegen(context, builder, signature, args):
        meminfo = cgutils.create_struct_proxy(_STATE_TYPE)(context, builder, value=args[0]).meminfo
        return builder.ptrtoint(meminfo, context.get_value_type(types.intp))

    return types.intp(state), codegen


@intrinsic
def _state_at(typingctx, address):
    """The `AnalyzerState` whose memory block is at `address` (from `_address_of`): a new
    reference, so the block lives while the kernel uses it. The caller keeps the state alive."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        state = cgutils.create_struct_proxy(_STATE_TYPE)(context, builder)
        meminfo_type = context.get_value_type(types.MemInfoPointer(_STATE_TYPE.get_data_type()))
        state.meminfo = builder.inttoptr(args[0], meminfo_type)
        value = state._getvalue()
        context.nrt.incref(builder, _STATE_TYPE, value)
        return value

    return _STATE_TYPE(address), codegen


@numba.njit(**_JIT)
def _state_address(state: AnalyzerState) -> int:
    """The handle the kernels below take for `state` (valid while `state` lives)."""
    return _address_of(state)


@numba.njit(**_JIT)
def _append(state: AnalyzerState, block: np.ndarray, offset: int, count: int) -> None:
    """Append block[offset:offset + count] to the frame at the history's tail (fits: checked)."""
    history = state.history
    at = history.shape[0] - state.hop + state.pending[0]
    for i in range(count):
        history[at + i] = block[offset + i]
    state.pending[0] += count


@numba.njit(**_JIT)
def _frame(state: AnalyzerState, out: np.ndarray) -> None:
    """All 16 features of the frame ending at the history's last sample, then shift by a hop."""
    history = state.history
    end = history.shape[0]
    hop = state.hop

    yin_d = state.yin_d
    _yin_difference(
        history,
        state.yin_window,
        state.tau_max,
        state.yin_packed,
        state.yin_cross,
        state.yin_energy,
        state.yin_correlation,
        yin_d,
    )
    out[F0], out[VOICING] = _yin(
        yin_d, state.yin_cmnd, state.tau_min, state.tau_max, state.sample_rate_hz
    )

    loudness_fft = state.loudness_fft
    _windowed_rfft(history, end, state.loudness_window, loudness_fft)
    weights = state.loudness_weights
    power = 0.0
    for k in range(weights.shape[0]):
        power += weights[k] * (loudness_fft.spec_re[k] ** 2 + loudness_fft.spec_im[k] ** 2)
    out[LOUDNESS] = 10.0 * np.log10(max(power, _LOUDNESS_FLOOR))

    previous = state.onset_previous
    onset_scale = state.onset_scale
    flux = 0.0
    for k in range(previous.shape[0]):
        magnitude = np.sqrt(loudness_fft.spec_re[k] ** 2 + loudness_fft.spec_im[k] ** 2)
        level = np.log1p(spec.ONSET_GAMMA * magnitude * onset_scale)
        flux += max(level - previous[k], 0.0)
        previous[k] = level
    out[ONSET] = flux / previous.shape[0]

    chroma_fft = state.chroma_fft
    _windowed_rfft(history, end, state.chroma_window, chroma_fft)
    classes = state.chroma_classes
    chroma = out[_CHROMA_START : _CHROMA_START + 12]
    chroma[:] = 0.0
    band = 0.0
    for k in range(classes.shape[0]):
        if classes[k] >= 0:
            bin_power = chroma_fft.spec_re[k] ** 2 + chroma_fft.spec_im[k] ** 2
            chroma[classes[k]] += bin_power
            band += bin_power
    scale = 1.0 / band if band * state.chroma_scale >= _CHROMA_FLOOR else 0.0
    for c in range(12):
        chroma[c] *= scale

    for i in range(end - hop):
        history[i] = history[i + hop]
    state.pending[0] = 0


# The kernels Python calls take the state's address, not the state: see the module docstring.


@numba.njit(**_JIT)
def _reset(address: int) -> None:
    """Silence the history and the onset memory; no samples pending."""
    state = _state_at(address)
    state.history[:] = 0.0
    state.onset_previous[:] = 0.0
    state.pending[0] = 0


@numba.njit(**_JIT)
def _push(address: int, block: np.ndarray, offset: int, count: int) -> None:
    """`_append` to the state at `address`."""
    _append(_state_at(address), block, offset, count)


@numba.njit(**_JIT)
def _compute_frame(address: int, out: np.ndarray) -> None:
    """`_frame` of the state at `address` into out."""
    _frame(_state_at(address), out)


@numba.njit(**_JIT)
def _push_frame(
    address: int, block: np.ndarray, offset: int, count: int, out: np.ndarray
) -> bool:
    """`_append`, then `_frame` into out if that completed the frame; whether it did."""
    state = _state_at(address)
    _append(state, block, offset, count)
    if state.pending[0] < state.hop:
        return False
    _frame(state, out)
    return True


class StreamingAnalyzer:
    """Causal per-frame features v1 for live use: push samples, compute a frame every hop.

    One analyzer per input signal, used by one thread. `push` and `push_frame` take at most the
    samples left in the current frame (`frame_samples - pending`): callers split blocks at
    frame edges. `push_frame` is the live path (one compiled call per block piece); `push` then
    `compute_frame` does the same in two.
    """

    def __init__(
        self,
        sample_rate_hz: int,
        f0_min_hz: float = spec.F0_MIN_HZ,
        f0_max_hz: float = spec.F0_MAX_HZ,
    ) -> None:
        self.sizes = spec.analysis_sizes(sample_rate_hz, f0_min_hz, f0_max_hz)
        self.sample_rate_hz = sample_rate_hz
        self.frame_samples = self.sizes.frame_samples
        pending = np.zeros(1, dtype=np.int64)
        self._state = _make_state(self.sizes, pending)  # kept alive: _address is its own
        # The state's pending count as kernels update it; a memoryview reads a Python int fast.
        self._pending = memoryview(pending)
        self._address = _state_address(self._state)
        self.warm_up()

    @property
    def pending(self) -> int:
        """Samples pushed since the last frame (0..frame_samples)."""
        return self._pending[0]

    def warm_up(self) -> None:
        """Run every kernel once (float32 and float64 input) so the first live frame is fast."""
        out = np.zeros(N_FEATURES)
        for dtype in (np.float32, np.float64):
            block = np.zeros(self.frame_samples, dtype=dtype)
            self.reset()
            self.push(block, 0, self.frame_samples)
            self.compute_frame(out)
            self.push_frame(block, 0, 1, out)
            self.push_frame(block, 1, self.frame_samples - 1, out)
        self.reset()

    def reset(self) -> None:
        """Forget all input: history back to silence, no pending samples."""
        _reset(self._address)

    def _check_push(self, name: str, block: np.ndarray, offset: int, count: int, hint: str) -> None:
        """Raise ValueError unless block[offset:offset + count] exists and fits the frame."""
        if block.dtype != np.float32 and block.dtype != np.float64 or block.ndim != 1:
            raise ValueError(f"{name} takes a 1-D float32 or float64 array, not {block.dtype}")
        if count < 0 or offset < 0 or offset + count > block.shape[0]:
            raise ValueError(f"samples {offset}..{offset + count} lie outside the block")
        pending = self._pending[0]
        if pending + count > self.frame_samples:
            raise ValueError(
                f"{count} samples overrun the frame ({pending} of {self.frame_samples} "
                f"pending): split blocks at frame edges{hint}"
            )

    def push(self, block: np.ndarray, offset: int, count: int) -> None:
        """Append block[offset:offset + count] (1-D float32 or float64) to the history."""
        self._check_push("push", block, offset, count, " and call compute_frame in between")
        _push(self._address, block, offset, count)

    def push_frame(self, block: np.ndarray, offset: int, count: int, out: np.ndarray) -> bool:
        """`push`, and if that completes the frame, `compute_frame(out)`: whether it did.

        One compiled call either way; `out` (float64[16]) is written only when this returns True.
        """
        self._check_push("push_frame", block, offset, count, "")
        return _push_frame(self._address, block, offset, count, out)

    def compute_frame(self, out: np.ndarray) -> None:
        """Write the frame's 16 features (FEATURE_NAMES order) into `out` (float64[16])."""
        pending = self._pending[0]
        if pending != self.frame_samples:
            raise ValueError(
                f"a frame needs {self.frame_samples} samples, {pending} are pending: "
                "push the rest first"
            )
        _compute_frame(self._address, out)

    def analyze(
        self, audio: np.ndarray, block_samples: int = DEFAULT_BLOCK_SAMPLES
    ) -> FeatureFrames:
        """Features of a whole signal fed in blocks of `block_samples`, from silence (resets).

        Offline convenience (allocates); the frames do not depend on `block_samples`.
        """
        audio = np.asarray(audio)
        if audio.dtype != np.float32:
            audio = np.ascontiguousarray(audio, dtype=np.float64)
        hop = self.frame_samples
        values = np.zeros((len(audio) // hop, N_FEATURES))
        out = np.zeros(N_FEATURES)
        self.reset()
        frame = 0
        for block_start in range(0, len(audio), block_samples):
            position = block_start
            block_end = min(block_start + block_samples, len(audio))
            while position < block_end:
                count = min(hop - self.pending, block_end - position)
                if self.push_frame(audio, position, count, out):
                    values[frame] = out
                    frame += 1
                position += count
        self.reset()
        return FeatureFrames(values, self.sample_rate_hz, hop)
