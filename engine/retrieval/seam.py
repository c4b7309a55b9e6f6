"""How smoothly a continuation joins what sounds before it (the player's audio, or a chunk).

From two seam summaries (`embedding.chunk_summary`): the audio before the join's *end* edge and
the continuation's *start* edge, the continuation transposed by `transpose` semitones:
- loudness jump (dB): |(end peak - mean) before - (start peak - mean) after|, peaks over the
  0.25 s edges. Levels are matched at the join (extend scales the continuation to the player),
  so what remains is a jump in contour.
- spectral continuity: cosine of the chromas of the last second before and the first second
  after (the pitch classes in play: key and harmony; 0..1, 0.5 where a side is silent).
- pitch leap (semitones) between the last pitch before and the first after (0 where unvoiced).
score = exp(-jump / 8 dB) * (0.4 + 0.6 * chroma) * exp(-max(0, leap - 5) / 7), in 0..1.
"""

from __future__ import annotations

import numpy as np

from engine.retrieval.embedding import (
    END_CHROMA,
    END_LOUDNESS,
    END_PITCH,
    MEAN_LOUDNESS,
    START_CHROMA,
    START_LOUDNESS,
    START_PITCH,
)

JUMP_SCALE_DB = 8.0
LEAP_FREE_SEMITONES = 5.0
LEAP_SCALE_SEMITONES = 7.0


def roll_rows(rows: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each 12-bin row rolled by its own shift: out[i] = np.roll(rows[i], shifts[i])."""
    index = (np.arange(12)[None, :] - np.asarray(shifts)[:, None]) % 12
    return np.take_along_axis(rows, index, axis=1)


def seam_terms(before: np.ndarray, after: np.ndarray, transpose: np.ndarray) -> dict[str, np.ndarray]:
    """Per candidate: loudness jump (dB), chroma continuity (0..1), pitch leap (semitones), score.

    `before` is one summary [SUMMARY_DIM] (or one per candidate), `after` [n, SUMMARY_DIM],
    `transpose` [n] int semitones added to the continuation.
    """
    after = np.atleast_2d(after)
    before = np.broadcast_to(before, after.shape)
    transpose = np.broadcast_to(np.asarray(transpose, dtype=np.int64), (after.shape[0],))
    jump = np.abs((before[:, END_LOUDNESS] - before[:, MEAN_LOUDNESS]) - (after[:, START_LOUDNESS] - after[:, MEAN_LOUDNESS]))
    end_chroma = before[:, END_CHROMA]
    start_chroma = roll_rows(after[:, START_CHROMA], transpose)
    norms = np.linalg.norm(end_chroma, axis=1) * np.linalg.norm(start_chroma, axis=1)
    chroma = np.where(norms > 1e-6, np.sum(end_chroma * start_chroma, axis=1) / np.maximum(norms, 1e-6), 0.5)
    voiced = (before[:, END_PITCH] > 0) & (after[:, START_PITCH] > 0)
    leap = np.where(voiced, np.abs(before[:, END_PITCH] - (after[:, START_PITCH] + transpose)), 0.0)
    score = (
        np.exp(-jump / JUMP_SCALE_DB) * (0.4 + 0.6 * np.clip(chroma, 0.0, 1.0))
        * np.exp(-np.maximum(0.0, leap - LEAP_FREE_SEMITONES) / LEAP_SCALE_SEMITONES)
    )
    return {"loudness_jump_db": jump, "chroma": chroma, "leap_semitones": leap, "score": score}
