"""The conductor's musical metrics, on per-frame tracks in acoustic time (training/conductor/targets.py).

Every input is sampled at plan frames n, heard at (n + 1) * 4 ms + the nominal device latency:
a follower's part frames as recorded from `perform`, and the true parts' role tracks.
"""

from __future__ import annotations

import numpy as np

from engine.conductor.contract import FRAME_S

ONSET_TOLERANCE_S = 0.05


def loudness_scores(predicted_db: np.ndarray, true_db: np.ndarray) -> dict[str, float]:
    """Mean absolute error (dB) and Pearson correlation over the given frames."""
    if len(true_db) < 2:
        return {"loudness_mae_db": float("nan"), "loudness_correlation": float("nan"), "frames": int(len(true_db))}
    error = float(np.mean(np.abs(predicted_db - true_db)))
    spread = np.std(predicted_db) * np.std(true_db)
    correlation = float(np.corrcoef(predicted_db, true_db)[0, 1]) if spread > 1e-9 else 0.0
    return {"loudness_mae_db": error, "loudness_correlation": correlation, "frames": int(len(true_db))}


def pitch_class_accuracy(predicted: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """(hits, judged): frames where the true part sounds (truth >= 0) and the predicted MIDI
    pitch (or pitch class; -1 silent, which counts as a miss) has its pitch class."""
    judged = truth >= 0
    hits = judged & (predicted >= 0) & (predicted % 12 == truth % 12)
    return int(hits.sum()), int(judged.sum())


def chord_tone_counts(notes: np.ndarray, chord: np.ndarray) -> tuple[int, int]:
    """(in chord, judged) over every sounding note of notes [n, k] (MIDI, -1 none) on frames
    whose true chord [n, 12] (the other parts' pitch classes) is not empty."""
    has_chord = chord.any(axis=1)
    sounding = (notes >= 0) & has_chord[:, None]
    rows, columns = np.nonzero(sounding)
    inside = chord[rows, notes[rows, columns] % 12] > 0
    return int(inside.sum()), int(len(rows))


def onset_times(marks: np.ndarray) -> np.ndarray:
    """Heard times (s) of the frames marked as onsets (relative: the latency cancels out)."""
    return (np.nonzero(marks)[0] + 1) * FRAME_S


def match_onsets(predicted_s: np.ndarray, true_s: np.ndarray, tolerance_s: float = ONSET_TOLERANCE_S) -> tuple[int, int, int, list[float]]:
    """(true positives, false positives, false negatives, signed asynchronies of the matches):
    one-to-one greedy matching in time order within the tolerance."""
    asynchronies: list[float] = []
    j = 0
    used = np.zeros(len(true_s), dtype=bool)
    for t in np.sort(predicted_s):
        while j < len(true_s) and true_s[j] < t - tolerance_s:
            j += 1
        best, best_gap = -1, tolerance_s + 1e-9
        k = j
        while k < len(true_s) and true_s[k] <= t + tolerance_s:
            if not used[k] and abs(true_s[k] - t) < best_gap:
                best, best_gap = k, abs(true_s[k] - t)
            k += 1
        if best >= 0:
            used[best] = True
            asynchronies.append(float(t - true_s[best]))
    tp = len(asynchronies)
    return tp, len(predicted_s) - tp, len(true_s) - tp, asynchronies


class OnsetTally:
    """Onset matches summed over roles and songs: F1 and the mean signed asynchrony (ms)."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0
        self.asynchronies: list[float] = []

    def add(self, predicted_s: np.ndarray, true_s: np.ndarray) -> None:
        tp, fp, fn, asynchronies = match_onsets(predicted_s, np.sort(true_s))
        self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn
        self.asynchronies += asynchronies

    def summary(self) -> dict[str, float]:
        precision = self.tp / max(1, self.tp + self.fp)
        recall = self.tp / max(1, self.tp + self.fn)
        f1 = 2 * precision * recall / max(1e-12, precision + recall)
        mean = float(np.mean(self.asynchronies) * 1e3) if self.asynchronies else float("nan")
        return {"onset_f1": f1, "precision": precision, "recall": recall, "mean_asynchrony_ms": mean,
                "matched": self.tp, "predicted": self.tp + self.fp, "true": self.tp + self.fn}
