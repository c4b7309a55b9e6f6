"""Reading input audio (any rate, any channel count) and writing float32 WAV outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from engine.errors import TuttiError
from engine.safe_files import atomic_path

MIN_FILE_RATE_HZ = 1000
MAX_FILE_RATE_HZ = 768000
MAX_CHANNELS = 64
MAX_DURATION_S = 4 * 3600.0  # longer than any take or corpus stem; a longer header is damaged
MAX_SAMPLES = 2**30  # 4 GiB of float32 samples in memory at once


def warn(message: str) -> None:
    """One warning line on stderr, the way launch.py writes its errors."""
    print(f"tutti: warning: {message}", file=sys.stderr, flush=True)


def _check_shape(path: Path, file_rate_hz: int, frames: int, channels: int, sample_rate_hz: int) -> None:
    """Refuse what no musician records and what would not fit in memory, before reading it."""
    if not MIN_FILE_RATE_HZ <= file_rate_hz <= MAX_FILE_RATE_HZ:
        raise TuttiError(
            f"input file {path} claims a sample rate of {file_rate_hz} Hz: give a file at "
            f"{MIN_FILE_RATE_HZ}..{MAX_FILE_RATE_HZ} Hz"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise TuttiError(f"input file {path} claims {channels} channels: give a file with 1..{MAX_CHANNELS}")
    duration_s = frames / file_rate_hz
    if duration_s > MAX_DURATION_S:
        raise TuttiError(
            f"input file {path} lasts {duration_s / 3600:.1f} h, over the {MAX_DURATION_S / 3600:.0f} h "
            "Tutti reads at once: cut it into shorter files"
        )
    if max(frames * channels, duration_s * sample_rate_hz) > MAX_SAMPLES:
        raise TuttiError(f"input file {path} is too large to read at once: cut it into shorter files")


def read_mono(path: Path | str, sample_rate_hz: int) -> np.ndarray:
    """Read an audio file, mix it to mono and resample it to `sample_rate_hz` (float32, 1-D).

    NaN and Inf samples are set to 0 with one warning line giving their count, so no analysis,
    CSV or model downstream ever sees them.
    """
    path = Path(path)
    if not path.is_file():
        raise TuttiError(f"input file {path} does not exist: check the path")
    try:
        with sf.SoundFile(str(path)) as handle:
            file_rate_hz = handle.samplerate
            _check_shape(path, file_rate_hz, handle.frames, handle.channels, sample_rate_hz)
            audio = handle.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise TuttiError(f"input file {path} is not readable audio ({reason}): give a WAV, FLAC or OGG file") from None
    if audio.shape[0] == 0:
        raise TuttiError(f"input file {path} holds no samples: give a file with audio in it")
    bad = ~np.isfinite(audio)
    if bad.any():
        count = int(np.count_nonzero(bad))
        audio[bad] = 0.0
        warn(f"input file {path} holds {count} NaN or Inf samples; they were set to 0")
    mono = audio.mean(axis=1, dtype=np.float64)
    if file_rate_hz != sample_rate_hz:
        mono = soxr.resample(mono, file_rate_hz, sample_rate_hz, quality="VHQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def write_float_wav(path: Path | str, audio: np.ndarray, sample_rate_hz: int) -> None:
    """Write `audio` ([n] or [n, channels]) as 32-bit float WAV (subtype named), atomically."""
    with atomic_path(Path(path)) as temporary:
        sf.write(str(temporary), np.asarray(audio, dtype=np.float32), sample_rate_hz, subtype="FLOAT", format="WAV")
