"""The conductor's input steps from analysis frames: one code path for training data and live.

Step k covers analysis frames [k*STEP_FRAMES, (k+1)*STEP_FRAMES) and is known once its last
frame is; its row holds the leader's held pitch (MIDI and pitch class), voicing, peak loudness
and onset strength, mean chroma, and the tempo, beat phase and key that the tempo/key
estimator reads from the TEMPO_WINDOW_FRAMES frames up to the step's end (zeros before the
start, exactly as a live window holds them). Steps before the start are rows of zeros.
"""

from __future__ import annotations

import numpy as np

from engine.conductor.contract import CONTEXT_STEPS, STEP_FRAMES, TEMPO_WINDOW_FRAMES, scale_loudness
from engine.features.frames import CHROMA, F0, LOUDNESS, ONSET, VOICING
from engine.tempo_key import TempoKeyTask

VOICING_THRESHOLD = 0.5
INPUT_FIELDS = (("pitch", 1), ("voiced", 1), ("pitch_class", 12), ("loudness", 1), ("onset", 1), ("chroma", 12),
                ("tempo", 1), ("tempo_confidence", 1), ("beat_phase", 2), ("key", 24))
N_INPUTS = sum(width for _, width in INPUT_FIELDS)


def input_slices() -> dict[str, slice]:
    """Field name -> slice into an input row."""
    slices, start = {}, 0
    for name, width in INPUT_FIELDS:
        slices[name] = slice(start, start + width)
        start += width
    return slices

_TEMPO_KEY = TempoKeyTask()


def step_row(step_frames: np.ndarray, tempo_window: np.ndarray, out: np.ndarray,
             estimate: np.ndarray | None = None) -> None:
    """The input row of one step: its frames [STEP_FRAMES, 16] and the TEMPO_WINDOW_FRAMES frames
    ending with it (for tempo, beat and key), into out [N_INPUTS]; the tempo/key task's vector
    for the step's end into `estimate` [7] when given."""
    out[:] = 0.0
    voiced = np.nonzero(step_frames[:, VOICING] >= VOICING_THRESHOLD)[0]
    if voiced.size:
        midi = 69.0 + 12.0 * np.log2(max(step_frames[voiced[-1], F0], 1.0) / 440.0)
        out[0] = (midi - 60.0) / 12.0
        out[1] = voiced.size / len(step_frames)
        out[2 + int(round(midi)) % 12] = 1.0
    out[14] = np.clip(scale_loudness(step_frames[:, LOUDNESS].max()), -3.0, 3.0)
    out[15] = np.log10(max(step_frames[:, ONSET].max(), 0.0) + 1e-4) + 4.0
    out[16:28] = step_frames[:, CHROMA].mean(axis=0)
    estimate = np.zeros(TempoKeyTask.result_size) if estimate is None else estimate
    _TEMPO_KEY.compute(tempo_window, estimate)
    tempo_bpm, tempo_confidence, tonic, mode, key_confidence, period, offset = estimate
    if tempo_bpm > 0.0 and period > 0.0:
        out[28] = np.log2(tempo_bpm / 110.0)
        out[29] = tempo_confidence
        phase = 2.0 * np.pi * (offset / period)
        out[30], out[31] = np.sin(phase), np.cos(phase)
    out[32 + int(tonic) + 12 * int(mode)] = key_confidence


def _tempo_window(frames: np.ndarray, end: int) -> np.ndarray:
    """The TEMPO_WINDOW_FRAMES frames before index `end` of `frames`, zeros before its start."""
    first = end - TEMPO_WINDOW_FRAMES
    if first >= 0:
        return frames[first:end]
    window = np.zeros((TEMPO_WINDOW_FRAMES, frames.shape[1]))
    window[-first:] = frames[:end]
    return window


def song_inputs(frames: np.ndarray) -> np.ndarray:
    """Input rows [n_steps, N_INPUTS] of every complete step of a whole take's frames [n, 16]."""
    n_steps = len(frames) // STEP_FRAMES
    rows = np.zeros((n_steps, N_INPUTS))
    for k in range(n_steps):
        end = (k + 1) * STEP_FRAMES
        step_row(frames[end - STEP_FRAMES:end], _tempo_window(frames, end), rows[k])
    return rows


class StepInputs:
    """Live: the last CONTEXT_STEPS rows at a trigger, computing only rows not seen before.

    Rows are cached by the absolute frame their step ends at; each is a pure function of the
    frames up to then, so the cache changes nothing but the cost (one new row per call).
    """

    def __init__(self) -> None:
        self._ends = np.full(CONTEXT_STEPS, -1, dtype=np.int64)
        self._rows = np.zeros((CONTEXT_STEPS, N_INPUTS))
        self._estimates = np.zeros((CONTEXT_STEPS, TempoKeyTask.result_size))
        self.context = np.zeros((CONTEXT_STEPS, N_INPUTS), dtype=np.float32)
        self.estimate = np.zeros(TempoKeyTask.result_size)  # the tempo/key vector at the last trigger

    def at(self, frames: np.ndarray, trigger: int) -> np.ndarray:
        """Rows [CONTEXT_STEPS, N_INPUTS] (oldest first) of the steps ending at trigger,
        trigger - STEP_FRAMES, ...; `frames` are the frames before `trigger` (at least
        TEMPO_WINDOW_FRAMES + (CONTEXT_STEPS - 1) * STEP_FRAMES of them)."""
        n = len(frames)
        for position in range(CONTEXT_STEPS):
            end = trigger - (CONTEXT_STEPS - 1 - position) * STEP_FRAMES
            slot = (end // STEP_FRAMES) % CONTEXT_STEPS
            if end <= 0:
                self.context[position] = 0.0
                self.estimate[:] = 0.0
                continue
            if self._ends[slot] != end:
                local = n - (trigger - end)
                step_row(frames[local - STEP_FRAMES:local], _tempo_window(frames, local), self._rows[slot],
                         self._estimates[slot])
                self._ends[slot] = end
            self.context[position] = self._rows[slot]
            self.estimate[:] = self._estimates[slot]
        return self.context

    def reset(self) -> None:
        self._ends[:] = -1
