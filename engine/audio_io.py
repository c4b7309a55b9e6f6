"""Reading input audio (any rate, any channel count) and writing float32 WAV outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from engine.errors import TuttiError
from engine.safe_files import atomic_path


def read_mono(path: Path | str, sample_rate_hz: int) -> np.ndarray:
    """Read an audio file, mix it to mono and resample it to `sample_rate_hz` (float32, 1-D)."""
    path = Path(path)
    if not path.is_file():
        raise TuttiError(f"input file {path} does not exist: check the path")
    try:
        audio, file_rate_hz = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise TuttiError(
            f"input file {path} is not readable audio ({err}): give a WAV, FLAC or OGG file"
        ) from None
    if audio.shape[0] == 0:
        raise TuttiError(f"input file {path} holds no samples: give a file with audio in it")
    mono = audio.mean(axis=1, dtype=np.float64)
    if not np.all(np.isfinite(mono)):
        raise TuttiError(f"input file {path} contains NaN or Inf samples: re-export it")
    if file_rate_hz != sample_rate_hz:
        mono = soxr.resample(mono, file_rate_hz, sample_rate_hz, quality="VHQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def write_float_wav(path: Path | str, audio: np.ndarray, sample_rate_hz: int) -> None:
    """Write `audio` ([n] or [n, channels]) as 32-bit float WAV (subtype named), atomically."""
    with atomic_path(Path(path)) as temporary:
        sf.write(str(temporary), np.asarray(audio, dtype=np.float32), sample_rate_hz, subtype="FLOAT", format="WAV")
