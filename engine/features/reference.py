"""Feature analysis v1, the numpy float64 reference: this module *is* the specification.

Every frame is causal: frame i sees input samples [0, (i+1)*hop) (zeros before the start), and
all its windows end at sample n = (i+1)*hop - 1. The live numba twin (`streaming.py`) and the
torch twin (`training/features_torch.py`) take their sizes, windows and bin tables from here and
are tested against `analyze_reference`. Sizes below are for 16 / 24 / 48 kHz.

f0_hz, voicing: causal YIN over the last W + tau_max + 1 samples (W = 20 ms: 320 / 480 / 960).
- d(tau) = sum_{j<W} (x[n-j] - x[n-j-tau])^2 for tau = 1..tau_max+1: the latest W samples
  against the same window tau earlier, so a note is measured once W plus one period of it has
  arrived. Values at or below YIN_ROUNDING_FLOOR (1e-12) times the energy of the samples read
  count as 0 (rounding noise: keeps FFT twins exact on silence and DC).
- cmnd(tau) = d(tau) * tau / sum_{k=1..tau} d(k), 1 where that sum is 0.
- tau: the lowest point (first on ties) of the first dip (run of consecutive lags) of cmnd below
  YIN_THRESHOLD = 0.15 within tau_min = max(2, floor(sr / f0_max)) .. tau_max = ceil(sr / f0_min);
  with no dip, the global minimum. Taking the whole first dip avoids both octave errors and the
  ripples of a wide low-note dip.
- f0 = sr / (tau + h * s), s the vertex (clipped to +-1) of the parabola through d(tau - h),
  d(tau), d(tau + h), h = max(1, (tau + 32) // 64) kept inside 1..tau_max+1: a spacing of about
  1/64 period, which averages noise out of the flat dips of low notes.
- voicing = clip(1 - cmnd(tau) / (2 * YIN_THRESHOLD), 0, 1): 1 for a periodic window, 0.5 at
  the threshold, 0 for noise and silence. f0 is always reported (f0_max for silence); callers
  zero it where voicing < 0.5. The estimate describes the period around (W - 1 + tau) / 2
  samples before the frame end (`yin_delay_samples`).

loudness_db: 10 log10 of the A-weighted mean square, floor -100 dB, from a periodic-Hann window
of 21.33 ms (341 / 512 / 1024 samples) zero-padded to a power of two (512 / 512 / 1024):
sum_k c_k A(f_k) |X_k|^2 / (N_fft sum(w^2)), c_k = 1 at DC and Nyquist, else 2, A the
IEC 61672 A-weighting power gain (1 at 1 kHz). A 1 kHz sine of peak 0.1 reads -23.01 dB.

onset: spectral flux of that same spectrum: the mean over bins f_k <= 8 kHz of
max(0, L_k - L_k(previous frame)), L_k = log1p(ONSET_GAMMA * 2 |X_k| / sum(w)), ONSET_GAMMA = 100
(2 |X_k| / sum(w) is a sine's amplitude at its peak bin). The frame before frame 0 is silent.

chroma: |X_k|^2 of a periodic-Hann window of 85.33 ms (1365 / 2048 / 4096 samples, FFT
2048 / 2048 / 4096); each bin with 55 Hz <= f_k <= 5 kHz adds to its nearest pitch class (C = 0);
normalised to sum 1, or all zeros when that in-band mean square is below -80 dB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import TuttiError
from engine.features.frames import (
    CHROMA,
    F0,
    LOUDNESS,
    N_FEATURES,
    ONSET,
    VOICING,
    FeatureFrames,
)
from engine.rates import frame_samples

F0_MIN_HZ = 50.0
F0_MAX_HZ = 2000.0
YIN_WINDOW_S = 0.020
YIN_THRESHOLD = 0.15
YIN_ROUNDING_FLOOR = 1e-12
LOUDNESS_WINDOW_S = 1024 / 48000
LOUDNESS_FLOOR_DB = -100.0
ONSET_MAX_HZ = 8000.0
ONSET_GAMMA = 100.0
CHROMA_WINDOW_S = 4096 / 48000
CHROMA_MIN_HZ = 55.0
CHROMA_MAX_HZ = 5000.0
CHROMA_FLOOR_DB = -80.0


@dataclass(frozen=True)
class AnalysisSizes:
    """Window and lag sizes in samples for one sample rate and f0 range."""

    sample_rate_hz: int
    frame_samples: int
    yin_window: int
    tau_min: int
    tau_max: int
    loudness_window: int
    loudness_fft: int
    chroma_window: int
    chroma_fft: int

    @property
    def yin_span(self) -> int:
        """Samples YIN reads: the window plus lags up to tau_max + 1 (for the parabola)."""
        return self.yin_window + self.tau_max + 1

    @property
    def history(self) -> int:
        """Samples of past input any feature of one frame reads."""
        return max(self.yin_span, self.loudness_window, self.chroma_window, self.frame_samples)


def next_pow2(n: int) -> int:
    """Smallest power of two >= n."""
    return 1 << (int(n) - 1).bit_length()


def analysis_sizes(
    sample_rate_hz: int, f0_min_hz: float = F0_MIN_HZ, f0_max_hz: float = F0_MAX_HZ
) -> AnalysisSizes:
    """Sizes of every analysis window at `sample_rate_hz` for f0 search in f0_min..f0_max Hz."""
    if not 0.0 < f0_min_hz < f0_max_hz <= sample_rate_hz / 4:
        raise TuttiError(
            f"f0 range {f0_min_hz}..{f0_max_hz} Hz is not valid at {sample_rate_hz} Hz: "
            "use 0 < f0_min_hz < f0_max_hz <= sample_rate_hz / 4"
        )
    loudness_window = round(LOUDNESS_WINDOW_S * sample_rate_hz)
    chroma_window = round(CHROMA_WINDOW_S * sample_rate_hz)
    return AnalysisSizes(
        sample_rate_hz=sample_rate_hz,
        frame_samples=frame_samples(sample_rate_hz),
        yin_window=round(YIN_WINDOW_S * sample_rate_hz),
        tau_min=max(2, int(np.floor(sample_rate_hz / f0_max_hz))),
        tau_max=int(np.ceil(sample_rate_hz / f0_min_hz)),
        loudness_window=loudness_window,
        loudness_fft=next_pow2(loudness_window),
        chroma_window=chroma_window,
        chroma_fft=next_pow2(chroma_window),
    )


def hann(n: int) -> np.ndarray:
    """Periodic Hann window of n samples: 0.5 - 0.5 cos(2 pi k / n)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def a_weighting_power(freqs_hz: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting as a power gain, exactly 1 at 1 kHz and 0 at DC."""
    f2 = np.asarray(freqs_hz, dtype=np.float64) ** 2

    def response(f2: np.ndarray) -> np.ndarray:
        num = 12194.0**2 * f2**2
        den = (f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12194.0**2)
        return num / den

    return (response(f2) / response(np.float64(1000.0**2))) ** 2


def a_weighting_db(freqs_hz: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting in dB (0 dB at 1 kHz, -inf at DC)."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(a_weighting_power(freqs_hz))


def rfft_freqs(n_fft: int, sample_rate_hz: int) -> np.ndarray:
    """Centre frequency in Hz of each one-sided FFT bin 0..n_fft/2."""
    return np.arange(n_fft // 2 + 1) * (sample_rate_hz / n_fft)


def loudness_bin_weights(sizes: AnalysisSizes) -> np.ndarray:
    """Per-bin weight turning |X_k|^2 of the loudness window into A-weighted mean square."""
    n_fft = sizes.loudness_fft
    one_sided = np.full(n_fft // 2 + 1, 2.0)
    one_sided[[0, -1]] = 1.0
    window_power = n_fft * np.sum(hann(sizes.loudness_window) ** 2)
    freqs = rfft_freqs(n_fft, sizes.sample_rate_hz)
    return one_sided * a_weighting_power(freqs) / window_power


def onset_bin_count(sizes: AnalysisSizes) -> int:
    """Number of loudness-FFT bins, from DC up, at or below ONSET_MAX_HZ."""
    freqs = rfft_freqs(sizes.loudness_fft, sizes.sample_rate_hz)
    return int(np.count_nonzero(freqs <= ONSET_MAX_HZ))


def onset_magnitude_scale(sizes: AnalysisSizes) -> float:
    """Factor turning |X_k| of the loudness window into sine amplitude (2 / sum(w))."""
    return 2.0 / float(np.sum(hann(sizes.loudness_window)))


def chroma_bin_classes(sizes: AnalysisSizes) -> np.ndarray:
    """Pitch class (C = 0) of each chroma-FFT bin, -1 outside CHROMA_MIN_HZ..CHROMA_MAX_HZ."""
    freqs = rfft_freqs(sizes.chroma_fft, sizes.sample_rate_hz)
    classes = np.full(freqs.shape, -1, dtype=np.int64)
    band = (freqs >= CHROMA_MIN_HZ) & (freqs <= CHROMA_MAX_HZ)
    midi = 69.0 + 12.0 * np.log2(freqs[band] / 440.0)
    classes[band] = np.round(midi).astype(np.int64) % 12
    return classes


def chroma_power_scale(sizes: AnalysisSizes) -> float:
    """Factor turning sum_k 2|X_k|^2 of the chroma window into mean square."""
    return 2.0 / (sizes.chroma_fft * float(np.sum(hann(sizes.chroma_window) ** 2)))


def power_floor(db: float) -> float:
    """Mean-square power of `db` dB re full scale."""
    return 10.0 ** (db / 10.0)


def causal_frames(audio: np.ndarray, hop: int, length: int) -> np.ndarray:
    """[len(audio) // hop, length] windows, row i ending at sample (i+1)*hop - 1, zeros before 0."""
    n_frames = len(audio) // hop
    padded = np.concatenate([np.zeros(length), np.asarray(audio, dtype=np.float64)])
    ends = (np.arange(n_frames) + 1) * hop + length
    return padded[ends[:, None] - length + np.arange(length)[None, :]]


def yin_difference(span: np.ndarray, window: int, tau_max: int) -> np.ndarray:
    """d[tau], tau = 0..tau_max+1: sum over the last `window` samples x[j] of (x[j] - x[j-tau])^2.

    `span` holds the last window + tau_max + 1 samples; values at or below YIN_ROUNDING_FLOOR
    times its energy are set to 0.
    """
    windows = np.lib.stride_tricks.sliding_window_view(span, window)
    lagged = windows[-2::-1]  # row tau - 1 starts tau samples before the current window
    d = np.zeros(tau_max + 2)
    d[1:] = np.sum((windows[-1] - lagged) ** 2, axis=1)
    d[d <= YIN_ROUNDING_FLOOR * np.sum(span**2)] = 0.0
    return d


def cumulative_mean_normalized(d: np.ndarray) -> np.ndarray:
    """YIN's cmnd: d[tau] * tau / sum(d[1..tau]), 1 at tau 0 and wherever that sum is 0."""
    cumulative = np.cumsum(d)
    cmnd = np.ones_like(d)
    positive = cumulative > 0.0
    positive[0] = False
    cmnd[positive] = d[positive] * np.flatnonzero(positive) / cumulative[positive]
    return cmnd


def yin_pick(cmnd: np.ndarray, tau_min: int, tau_max: int) -> int:
    """The lowest point of the first dip of `cmnd` below YIN_THRESHOLD in tau_min..tau_max.

    A dip is a run of consecutive lags below the threshold; with none, the global minimum.
    """
    searched = cmnd[tau_min : tau_max + 1]
    below = searched < YIN_THRESHOLD
    if not below.any():
        return tau_min + int(np.argmin(searched))
    start = int(np.argmax(below))
    above_after = np.flatnonzero(~below[start:])
    stop = start + int(above_after[0]) if len(above_after) else len(searched)
    return tau_min + start + int(np.argmin(searched[start:stop]))


def parabola_spacing(tau: int, tau_max: int) -> int:
    """Lag spacing h of the refining parabola: about tau / 64, kept inside 1..tau_max+1."""
    return max(1, min((tau + 32) // 64, tau_max + 1 - tau, tau - 1))


def parabolic_shift(before: float, at: float, after: float) -> float:
    """Vertex offset in -1..1 of the parabola through (-1, before), (0, at), (1, after)."""
    curvature = before - 2.0 * at + after
    if curvature <= 0.0:
        return 0.0
    return float(np.clip(0.5 * (before - after) / curvature, -1.0, 1.0))


def voicing_from_cmnd(cmnd_value: float) -> float:
    """Voicing in 0..1: 1 - cmnd / (2 * YIN_THRESHOLD), clipped."""
    return float(np.clip(1.0 - cmnd_value / (2.0 * YIN_THRESHOLD), 0.0, 1.0))


def yin_frame(span: np.ndarray, sizes: AnalysisSizes) -> tuple[float, float]:
    """(f0_hz, voicing) from the last `sizes.yin_span` samples."""
    d = yin_difference(span, sizes.yin_window, sizes.tau_max)
    cmnd = cumulative_mean_normalized(d)
    tau = yin_pick(cmnd, sizes.tau_min, sizes.tau_max)
    h = parabola_spacing(tau, sizes.tau_max)
    shift = h * parabolic_shift(d[tau - h], d[tau], d[tau + h])
    return sizes.sample_rate_hz / (tau + shift), voicing_from_cmnd(cmnd[tau])


def yin_delay_samples(sizes: AnalysisSizes, f0_hz: float) -> float:
    """How far before a frame's last sample its f0 estimate applies, for a tone at `f0_hz`.

    YIN compares x[j] with x[j - tau] for the last W samples j: the middle of those pairs lies
    (W - 1 + tau) / 2 samples back.
    """
    return (sizes.yin_window - 1 + sizes.sample_rate_hz / f0_hz) / 2.0


def power_spectra(audio: np.ndarray, hop: int, window: int, n_fft: int) -> np.ndarray:
    """[n_frames, n_fft/2+1] |X_k|^2 of each frame's last `window` samples, periodic Hann."""
    frames = causal_frames(audio, hop, window) * hann(window)
    return np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2


def loudness_db(power_spectrum: np.ndarray, sizes: AnalysisSizes) -> np.ndarray:
    """A-weighted power in dB per frame from the loudness window's |X_k|^2, floor -100 dB."""
    power = power_spectrum @ loudness_bin_weights(sizes)
    return 10.0 * np.log10(np.maximum(power, power_floor(LOUDNESS_FLOOR_DB)))


def onset_strength(power_spectrum: np.ndarray, sizes: AnalysisSizes) -> np.ndarray:
    """Spectral flux per frame from the loudness window's |X_k|^2 (the frame before 0 is silent)."""
    n_bins = onset_bin_count(sizes)
    magnitude = np.sqrt(power_spectrum[:, :n_bins]) * onset_magnitude_scale(sizes)
    log_magnitude = np.log1p(ONSET_GAMMA * magnitude)
    previous = np.vstack([np.zeros((1, n_bins)), log_magnitude[:-1]])
    return np.sum(np.maximum(log_magnitude - previous, 0.0), axis=1) / n_bins


def chroma(power_spectrum: np.ndarray, sizes: AnalysisSizes) -> np.ndarray:
    """[n_frames, 12] normalised pitch-class energy from the chroma window's |X_k|^2."""
    classes = chroma_bin_classes(sizes)
    band = classes >= 0
    totals = np.zeros((power_spectrum.shape[0], 12))
    for pitch_class in range(12):
        totals[:, pitch_class] = power_spectrum[:, classes == pitch_class].sum(axis=1)
    band_power = power_spectrum[:, band].sum(axis=1) * chroma_power_scale(sizes)
    audible = band_power >= power_floor(CHROMA_FLOOR_DB)
    out = np.zeros_like(totals)
    out[audible] = totals[audible] / totals[audible].sum(axis=1, keepdims=True)
    return out


def analyze_reference(
    audio: np.ndarray,
    sample_rate_hz: int,
    *,
    f0_min_hz: float = F0_MIN_HZ,
    f0_max_hz: float = F0_MAX_HZ,
) -> FeatureFrames:
    """Features v1 of a mono signal: one row per 4 ms frame, len(audio) // hop rows."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise TuttiError(f"audio has shape {audio.shape}: pass a mono 1-D signal")
    sizes = analysis_sizes(sample_rate_hz, f0_min_hz, f0_max_hz)
    hop = sizes.frame_samples
    values = np.zeros((len(audio) // hop, N_FEATURES))
    for i, span in enumerate(causal_frames(audio, hop, sizes.yin_span)):
        values[i, F0], values[i, VOICING] = yin_frame(span, sizes)
    loud_spectra = power_spectra(audio, hop, sizes.loudness_window, sizes.loudness_fft)
    values[:, LOUDNESS] = loudness_db(loud_spectra, sizes)
    values[:, ONSET] = onset_strength(loud_spectra, sizes)
    values[:, CHROMA] = chroma(
        power_spectra(audio, hop, sizes.chroma_window, sizes.chroma_fft), sizes
    )
    return FeatureFrames(values=values, sample_rate_hz=sample_rate_hz, frame_samples=hop)
