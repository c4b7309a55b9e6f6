"""Leader frames -> embeddings (spec v1, see `spec`) and per-chunk seam summaries.

Frames are the engine's feature rows ([n, 16], engine/features layout, 250 per second) of the
leader stem alone. The same functions embed the corpus (from the feature cache) and a player's
recent audio (from the live analysis), so both sides of a query are measured alike.
"""

from __future__ import annotations

import numpy as np

from engine.features.frames import CHROMA, F0, LOUDNESS, ONSET, VOICING
from engine.retrieval import spec

SEAM_EDGE_FRAMES = 62  # 0.25 s at each edge: peak loudness, first/last pitch
SEAM_CHROMA_FRAMES = 250  # 1 s at each edge: the pitch classes in play (key and harmony)
# Summary columns (float32 per chunk): peak loudness in each edge, mean voiced loudness, first/last voiced
# pitch (MIDI semitones, 0 = none), voiced share, chroma of the first and last second (12 each).
START_LOUDNESS, END_LOUDNESS, MEAN_LOUDNESS, START_PITCH, END_PITCH, VOICED_SHARE = range(6)
START_CHROMA = slice(6, 18)
END_CHROMA = slice(18, 30)
SUMMARY_DIM = 30


def voiced_mask(frames: np.ndarray) -> np.ndarray:
    """Frames where the leader sounds a pitch: voicing >= 0.5 and loudness above the floor."""
    return (frames[:, VOICING] >= 0.5) & (frames[:, LOUDNESS] > spec.VOICED_MIN_LOUDNESS_DB)


def semitones(f0_hz: np.ndarray) -> np.ndarray:
    """MIDI pitch (fractional) of frequencies in Hz (> 0)."""
    return 69.0 + 12.0 * np.log2(np.maximum(f0_hz, 1e-6) / 440.0)


def _unit(x: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(x))
    return x / norm if norm > 1e-12 else np.zeros_like(x)


def _weighted_chroma(frames: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    weights = np.where(voiced, 10.0 ** (frames[:, LOUDNESS] / 20.0), 0.0)
    return weights @ frames[:, CHROMA]


def _segments(values: np.ndarray, n_segments: int) -> np.ndarray:
    """[n_segments, width] rows of `values` split as np.array_split does, NaN-padded."""
    n = len(values)
    bounds = np.array([0] + [len(p) for p in np.array_split(np.empty(n), n_segments)]).cumsum()
    width = int(np.max(np.diff(bounds)))
    out = np.full((n_segments, width), np.nan)
    for i in range(n_segments):
        out[i, : bounds[i + 1] - bounds[i]] = values[bounds[i]:bounds[i + 1]]
    return out


def embed_chunk(frames: np.ndarray) -> np.ndarray:
    """The float32 [EMBEDDING_DIM] unit embedding of one chunk's leader frames ([CHUNK_FRAMES, 16])."""
    frames = np.asarray(frames, dtype=np.float64)
    voiced = voiced_mask(frames)
    n = frames.shape[0]
    chroma = np.concatenate([
        _unit(_weighted_chroma(frames[part], voiced[part]))
        for part in np.array_split(np.arange(n), spec.CHROMA_HALVES)
    ])
    pitch = np.zeros(spec.PITCH_SEGMENTS)
    if voiced.any():
        midi = semitones(frames[:, F0])
        centre = float(np.mean(midi[voiced]))
        segments = _segments(np.where(voiced, midi, np.nan), spec.PITCH_SEGMENTS)
        present = np.isfinite(segments).any(axis=1)
        pitch[present] = np.clip((np.nanmedian(segments[present], axis=1) - centre) / 12.0, -2.0, 2.0)
    loudness = np.clip(frames[:, LOUDNESS], -80.0, 0.0)
    loud = np.nanmean(_segments(loudness, spec.LOUDNESS_SEGMENTS), axis=1)
    loud = (loud - loud.mean()) / 20.0
    onset = _unit(np.nansum(_segments(frames[:, ONSET], spec.ONSET_SEGMENTS), axis=1))
    vector = np.concatenate([
        spec.CHROMA_WEIGHT * chroma, spec.PITCH_WEIGHT * pitch, spec.LOUDNESS_WEIGHT * loud, spec.ONSET_WEIGHT * onset,
    ])
    return _unit(vector).astype(np.float32)


def rotate_chroma(vectors: np.ndarray, semitones_up: int) -> np.ndarray:
    """Embeddings with their chroma blocks rolled by `semitones_up` (pitch class p -> p + r)."""
    out = np.array(vectors, dtype=np.float32, copy=True)
    order = (np.arange(12) - semitones_up) % 12
    for half in range(spec.CHROMA_HALVES):
        out[..., 12 * half: 12 * half + 12] = out[..., 12 * half + order]
    return out


def chunk_summary(frames: np.ndarray) -> np.ndarray:
    """The float32 [SUMMARY_DIM] seam summary of a span of leader frames (its edges and level).

    Edge levels are peaks over 0.25 s, not means: a phrase that ends in a release and a phrase
    that starts with an attack meet at a natural boundary, and peaks see the notes on both sides.
    """
    frames = np.asarray(frames, dtype=np.float64)
    voiced = voiced_mask(frames)
    loudness = np.clip(frames[:, LOUDNESS], -80.0, 0.0)
    out = np.zeros(SUMMARY_DIM, dtype=np.float32)
    out[START_LOUDNESS] = loudness[:SEAM_EDGE_FRAMES].max()
    out[END_LOUDNESS] = loudness[-SEAM_EDGE_FRAMES:].max()
    out[MEAN_LOUDNESS] = loudness[voiced].mean() if voiced.any() else loudness.mean()
    midi = semitones(frames[:, F0])
    head, tail = voiced[:SEAM_EDGE_FRAMES], voiced[-SEAM_EDGE_FRAMES:]
    out[START_PITCH] = midi[:SEAM_EDGE_FRAMES][head][0] if head.any() else 0.0
    out[END_PITCH] = midi[-SEAM_EDGE_FRAMES:][tail][-1] if tail.any() else 0.0
    out[VOICED_SHARE] = voiced.mean()
    out[START_CHROMA] = _unit(_weighted_chroma(frames[:SEAM_CHROMA_FRAMES], voiced[:SEAM_CHROMA_FRAMES]))
    out[END_CHROMA] = _unit(_weighted_chroma(frames[-SEAM_CHROMA_FRAMES:], voiced[-SEAM_CHROMA_FRAMES:]))
    return out


def chunk_starts(n_frames: int) -> np.ndarray:
    """Start frames of every whole chunk of a song of `n_frames` frames."""
    if n_frames < spec.CHUNK_FRAMES:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_frames - spec.CHUNK_FRAMES + 1, spec.HOP_FRAMES, dtype=np.int64)


def embed_song(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [n_chunks, EMBEDDING_DIM], summaries [n_chunks, SUMMARY_DIM]) of a leader stem."""
    starts = chunk_starts(frames.shape[0])
    vectors = np.zeros((len(starts), spec.EMBEDDING_DIM), dtype=np.float32)
    summaries = np.zeros((len(starts), SUMMARY_DIM), dtype=np.float32)
    for i, start in enumerate(starts):
        span = frames[start:start + spec.CHUNK_FRAMES]
        vectors[i] = embed_chunk(span)
        summaries[i] = chunk_summary(span)
    return vectors, summaries
