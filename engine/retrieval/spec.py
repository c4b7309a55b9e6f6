"""Chunking and the embedding spec, version 1: recorded in every index and checked on load.

A chunk is CHUNK_FRAMES analysis frames (2 s at 250 Hz) of a song's leader stem, starting every
HOP_FRAMES (1 s). Chunk i of a song starts at frame i * HOP_FRAMES; the chunk that *follows*
chunk i without overlap is chunk i + CHUNK_FRAMES // HOP_FRAMES.

Embedding (EMBEDDING_DIM = 56 floats, unit L2 norm, cosine space), from the chunk's frames:
- chroma: loudness-weighted mean chroma of voiced frames in each half of the chunk, each half
  L2-normalised (2 x 12), weight CHROMA_WEIGHT. Rotating both halves by r semitones is how a
  query is transposed.
- pitch contour: median f0 in semitones over 8 equal segments of voiced frames, minus the chunk's
  voiced mean, divided by 12 and clipped to +-2 (8, transposition-free), weight PITCH_WEIGHT.
- loudness contour: mean loudness_db over 8 segments (clipped to -80..0 dB), minus the chunk's
  mean, divided by 20 (8), weight LOUDNESS_WEIGHT.
- onset rhythm: summed onset strength in 16 segments of 125 ms, L2-normalised (16), weight
  ONSET_WEIGHT.
Each block is scaled by its weight, then the whole vector is normalised (zero stays zero).
"""

from __future__ import annotations

from engine.features.frames import FEATURE_VERSION
from engine.rates import CONTROL_RATE_HZ

EMBEDDING_VERSION = 1
CHUNK_S = 2.0
HOP_S = 1.0
CHUNK_FRAMES = int(CHUNK_S * CONTROL_RATE_HZ)
HOP_FRAMES = int(HOP_S * CONTROL_RATE_HZ)
NEXT_CHUNK_OFFSET = CHUNK_FRAMES // HOP_FRAMES  # chunk ids from a chunk to the one that follows it
CHROMA_HALVES = 2
PITCH_SEGMENTS = 8
LOUDNESS_SEGMENTS = 8
ONSET_SEGMENTS = 16
CHROMA_WEIGHT = 1.0
PITCH_WEIGHT = 0.5
LOUDNESS_WEIGHT = 0.35
ONSET_WEIGHT = 0.5
VOICED_MIN_LOUDNESS_DB = -60.0
EMBEDDING_DIM = 12 * CHROMA_HALVES + PITCH_SEGMENTS + LOUDNESS_SEGMENTS + ONSET_SEGMENTS
HNSW_M = 12
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128


def embedding_spec() -> dict:
    """Everything an index's vectors depend on; an index whose spec differs is refused."""
    return {
        "embedding_version": EMBEDDING_VERSION,
        "feature_version": FEATURE_VERSION,
        "frame_rate_hz": CONTROL_RATE_HZ,
        "chunk_frames": CHUNK_FRAMES,
        "hop_frames": HOP_FRAMES,
        "dim": EMBEDDING_DIM,
        "blocks": {
            "chroma_halves": CHROMA_HALVES, "pitch_segments": PITCH_SEGMENTS,
            "loudness_segments": LOUDNESS_SEGMENTS, "onset_segments": ONSET_SEGMENTS,
        },
        "weights": {
            "chroma": CHROMA_WEIGHT, "pitch": PITCH_WEIGHT, "loudness": LOUDNESS_WEIGHT, "onset": ONSET_WEIGHT,
        },
        "voiced_min_loudness_db": VOICED_MIN_LOUDNESS_DB,
        "space": "cosine",
    }
