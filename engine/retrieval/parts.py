"""What a song's stems play, stored once per song and read by time range (DESIGN.md section 7).

Two encodings, both zlib-compressed blobs:
- notes: int32 rows (onset_ms, duration_ms, MIDI pitch, velocity), sorted by onset: 16 bytes a
  note before compression. Used where the corpus has MIDI (the shipped index).
- curves: float16 rows (f0 in MIDI semitones, 0 = unvoiced; loudness in dB) at CURVE_RATE_HZ
  (50 Hz, every fifth analysis frame): 4 bytes per 20 ms. Used for plain audio with no labels.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from engine.errors import TuttiError
from engine.features.frames import F0, LOUDNESS, VOICING
from engine.rates import CONTROL_RATE_HZ

CURVE_RATE_HZ = 50
CURVE_STEP_FRAMES = CONTROL_RATE_HZ // CURVE_RATE_HZ
NOTES, CURVES = "notes", "curves"


@dataclass(frozen=True)
class Part:
    """One stem of an indexed song. `notes` int32 [n, 4] (onset_ms, duration_ms, pitch,
    velocity) or `curves` float16 [n, 2] (f0 semitones, loudness dB) at 50 Hz, never both."""

    name: str
    role: str
    program_num: int
    is_drum: bool
    is_leader: bool
    notes: np.ndarray | None = None
    curves: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return NOTES if self.notes is not None else CURVES


def notes_from_seconds(onset_s, offset_s, pitch, velocity) -> np.ndarray:
    """int32 note rows from columns in seconds (the corpus MIDI labels), sorted by onset."""
    onset_ms = np.rint(np.asarray(onset_s) * 1000.0).astype(np.int64)
    duration_ms = np.maximum(np.rint(np.asarray(offset_s) * 1000.0).astype(np.int64) - onset_ms, 1)
    rows = np.column_stack([onset_ms, duration_ms, np.asarray(pitch), np.asarray(velocity)]).astype(np.int32)
    return rows[np.lexsort((rows[:, 2], rows[:, 0]))] if len(rows) else np.zeros((0, 4), dtype=np.int32)


def curves_from_frames(frames: np.ndarray) -> np.ndarray:
    """float16 [n, 2] curves at 50 Hz (f0 semitones or 0, loudness dB) from analysis frames."""
    sub = frames[::CURVE_STEP_FRAMES]
    voiced = sub[:, VOICING] >= 0.5
    pitch = np.where(voiced, 69.0 + 12.0 * np.log2(np.maximum(sub[:, F0], 1e-6) / 440.0), 0.0)
    return np.column_stack([pitch, np.clip(sub[:, LOUDNESS], -100.0, 0.0)]).astype(np.float16)


def encode(part: Part) -> bytes:
    """The compressed blob of a part's notes or curves."""
    array = part.notes if part.notes is not None else part.curves
    return zlib.compress(np.ascontiguousarray(array).tobytes(), 6)


def decode(kind: str, blob: bytes, where: str) -> np.ndarray:
    """The array a blob holds; TuttiError naming `where` if it is damaged."""
    try:
        raw = zlib.decompress(blob)
    except zlib.error:
        raise TuttiError(f"{where} is damaged (a part's data does not decompress): rebuild the index") from None
    dtype, width = (np.int32, 4) if kind == NOTES else (np.float16, 2)
    if len(raw) % (np.dtype(dtype).itemsize * width):
        raise TuttiError(f"{where} is damaged (a part's data has a partial row): rebuild the index")
    return np.frombuffer(raw, dtype=dtype).reshape(-1, width)


def notes_between(notes: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Notes sounding in [start_s, end_s): onset before the end and offset after the start."""
    onset = notes[:, 0] / 1000.0
    offset = (notes[:, 0] + notes[:, 1]) / 1000.0
    return notes[(onset < end_s) & (offset > start_s)]


def key_from_notes(notes: np.ndarray) -> tuple[int, str]:
    """(tonic pitch class, mode) of duration-weighted note pitch classes (Krumhansl-Kessler)."""
    from engine.tempo_key import estimate_key

    if len(notes) == 0:
        return 0, "major"
    profile = np.zeros((12, 12))
    np.fill_diagonal(profile, 1.0)
    weights = np.zeros(12)
    np.add.at(weights, notes[:, 2] % 12, notes[:, 1].astype(np.float64))
    tonic, mode, _ = estimate_key(profile, weights)
    return tonic, mode
