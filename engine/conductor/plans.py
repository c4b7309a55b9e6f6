"""Predicted bins to part plans: sustained notes, no flicker between neighbouring notes.

The model predicts, per role and 40 ms bin, a note distribution (or a pitch-class set), an
onset probability and a loudness. `RolePlanner`s turn that into plan frames (engine/parts.py):
a note holds until the model clearly prefers another one or predicts a new onset; a new note
starts in the middle of its bin (the bins are acoustic times, so the middle is unbiased), no
sooner than MIN_NOTE_BINS after the last; loudness follows the bins through a one-pole
smoother. A planner's state is what sounds at the first frame of the next plan (a plan is
replaced PERIOD_FRAMES after it comes into force), so consecutive plans join without a seam.
"""

from __future__ import annotations

import numpy as np

from engine.conductor.contract import (
    BIN_FRAMES, HORIZON_BINS, LOOKAHEAD_FRAMES, LOUDNESS_CENTRE_DB, LOUDNESS_SPAN_DB, NOTE_RANGES, PERIOD_FRAMES,
    n_note_classes, output_slices,
)
from engine.parts import MAX_NOTES, PART_ACTIVE, PART_F0, PART_LOUDNESS, PART_ONSET, SILENT_DB

ONSET_THRESHOLD = 0.5       # these four were chosen on the val split (eval conductor --split val)
PREFERENCE = 1.3          # a new note must be this many times likelier than the one sounding
MIN_NOTE_BINS = 2         # 80 ms: the shortest note a planner starts
REST_PREFERENCE = 4.0     # a line rests only where the rest is this many times likelier than its best pitch class
HARMONY_THRESHOLD = 0.35  # the harmony sounds the pitch classes at least this likely
LOUDNESS_RANGE_DB = (-80.0, -6.0)
LOUDNESS_SMOOTHING = 0.25  # per frame: ~12 ms to follow a new bin's level
DRUM_HIT_FRAMES = 3
DRUM_PITCH = 36            # a drum-playing voice sounds this MIDI note (GM kick)
START_OFFSET = BIN_FRAMES // 2
GRID_LEAD_FRAMES = 5       # the analysis's onset peak trails the sound by ~20 ms (eval: beat-grid asynchrony)
GRID_MIN_CONFIDENCE = 0.3
_SLICES = output_slices()
_DECAY = (1.0 - LOUDNESS_SMOOTHING) ** np.arange(1, BIN_FRAMES + 1)  # the smoother's memory k frames on
assert PERIOD_FRAMES % BIN_FRAMES == 0  # a plan is replaced at a bin edge


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class RolePlanner:
    """Shared state and output of every role: the notes sounding (MIDI, -1 none), frames since
    the last onset, the smoothed loudness. Subclasses choose the notes of each bin."""

    role = ""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._loudness_index = _SLICES[f"{self.role}_loudness"].start
        self.notes: tuple[int, ...] = ()
        self.since_onset = 10 ** 6
        self.loudness_db = SILENT_DB

    def choose(self, bin_values: np.ndarray, allow_onset: bool) -> tuple[tuple[int, ...], bool]:
        """(the notes this bin plays, whether they start anew) from one bin's outputs."""
        raise NotImplementedError

    def loudness_of(self, bin_values: np.ndarray, offset_db: float = 0.0) -> float:
        value = float(bin_values[self._loudness_index]) * LOUDNESS_SPAN_DB + LOUDNESS_CENTRE_DB + offset_db
        low, high = LOUDNESS_RANGE_DB
        return low if value != value else min(max(value, low), high)  # NaN -> the floor

    def plan(self, bins: np.ndarray, plan: np.ndarray, silent: bool, starts_at: np.ndarray | None = None,
             offset_db: float = 0.0) -> None:
        """Fill plan [HORIZON_FRAMES, 4, MAX_NOTES] from bins [HORIZON_BINS, OUTPUT_WIDTH]; a note
        that starts in bin h starts at frame starts_at[h] of the bin (default: its middle); the
        predicted loudness is moved by `offset_db` (the player's level against the training's)."""
        plan[:] = 0.0
        plan[:, PART_LOUDNESS] = SILENT_DB
        notes, since, level = self.notes, self.since_onset, self.loudness_db
        saved = (notes, since, level)
        for h in range(HORIZON_BINS):
            if h * BIN_FRAMES == PERIOD_FRAMES:
                saved = (notes, since, level)  # what sounds where the next plan takes over
            if silent:
                chosen, starts = (), False
            else:
                self.notes = notes  # choose() weighs the bin against what sounds now
                chosen, starts = self.choose(bins[h], since + START_OFFSET >= MIN_NOTE_BINS * BIN_FRAMES)
            target = self.loudness_of(bins[h], offset_db)
            levels = np.full(BIN_FRAMES, target) if level <= SILENT_DB else target + (level - target) * _DECAY
            rows = plan[h * BIN_FRAMES : (h + 1) * BIN_FRAMES]
            cut = BIN_FRAMES
            if starts or chosen != notes:
                cut = START_OFFSET if starts_at is None else int(starts_at[h])
            self.write_frames(rows[:cut], notes, since + 1, levels[:cut])
            if cut < BIN_FRAMES:
                notes, since = chosen, -cut  # the frame at `cut` is the new note's first (since 1)
                rows[cut, PART_ONSET, : len(notes)] = 1.0
                self.write_frames(rows[cut:], notes, 1, levels[cut:])
            since += BIN_FRAMES
            level = float(levels[-1])
        self.notes, self.since_onset, self.loudness_db = saved

    def write_frames(self, rows: np.ndarray, notes: tuple[int, ...], first_since: int, levels: np.ndarray) -> None:
        """Frames [m, 4, MAX_NOTES] sounding `notes` at `levels`; the first is `first_since` frames
        after the notes' onset."""
        for k, note in enumerate(notes[:MAX_NOTES]):
            rows[:, PART_F0, k] = midi_to_hz(note)
            rows[:, PART_LOUDNESS, k] = levels
            rows[:, PART_ACTIVE, k] = 1.0


class LinePlanner(RolePlanner):
    """Bass or counter-line: one note from a distribution over pitches and a rest."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._low = NOTE_RANGES[role][0]
        self._rest = n_note_classes(role) - 1
        self._classes = (self._low + np.arange(self._rest)) % 12
        self._members = [np.nonzero(self._classes == c)[0] for c in range(12)]
        super().__init__()

    def choose(self, bin_values: np.ndarray, allow_onset: bool) -> tuple[tuple[int, ...], bool]:
        if not allow_onset:
            return self.notes, False
        probabilities = _softmax(bin_values[_SLICES[f"{self.role}_note"]])
        rest = probabilities[self._rest]
        by_class = np.bincount(self._classes, weights=probabilities[: self._rest], minlength=12)
        best_class = int(np.argmax(by_class))  # the pitch class first (octaves split the mass), then its octave
        in_class = self._members[best_class]
        pitched = self._low + int(in_class[np.argmax(probabilities[in_class])])
        if _sigmoid(bin_values[_SLICES[f"{self.role}_onset"]])[0] > ONSET_THRESHOLD and by_class[best_class] * PREFERENCE >= rest:
            return (pitched,), True  # a note is predicted to start here
        current = by_class[self.notes[0] % 12] if self.notes else rest
        if current * PREFERENCE >= max(by_class[best_class], rest):
            return self.notes, False
        return (() if rest > REST_PREFERENCE * by_class[best_class] else (pitched,)), False


class HarmonyPlanner(RolePlanner):
    """Harmony: the likely pitch classes (up to MAX_NOTES), voiced around the predicted register."""

    role = "harmony"

    def choose(self, bin_values: np.ndarray, allow_onset: bool) -> tuple[tuple[int, ...], bool]:
        probabilities = _sigmoid(bin_values[_SLICES["harmony_pitch_classes"]])
        register = 60.0 + 12.0 * float(np.clip(bin_values[_SLICES["harmony_register"]][0], -2.0, 2.0))
        classes = [int(c) for c in np.argsort(-probabilities)[:MAX_NOTES] if probabilities[c] > HARMONY_THRESHOLD]
        chord = tuple(sorted(int(register + ((c - register + 6.0) % 12.0) - 6.0 + 0.5) for c in classes))
        onset = bool(_sigmoid(bin_values[_SLICES["harmony_onset"]])[0] > ONSET_THRESHOLD) and allow_onset
        current = {n % 12 for n in self.notes}
        if not allow_onset or (set(classes) == current and not onset):
            return self.notes, False
        if current and classes and probabilities[list(current)].mean() * PREFERENCE >= probabilities[classes].mean() and not onset:
            return self.notes, False
        return chord, onset and bool(chord)


class DrumPlanner(RolePlanner):
    """Drums: a short hit wherever an onset is likely."""

    role = "drums"

    def choose(self, bin_values: np.ndarray, allow_onset: bool) -> tuple[tuple[int, ...], bool]:
        hit = bool(_sigmoid(bin_values[_SLICES["drums_onset"]])[0] > ONSET_THRESHOLD) and allow_onset
        return ((DRUM_PITCH,), True) if hit else (self.notes, False)

    def write_frames(self, rows: np.ndarray, notes: tuple[int, ...], first_since: int, levels: np.ndarray) -> None:
        hit = max(0, min(len(rows), DRUM_HIT_FRAMES - first_since + 1))  # frames still within the hit
        if notes and hit:
            super().write_frames(rows[:hit], notes, first_since, levels[:hit])


def role_planners() -> list[RolePlanner]:
    """One planner per role, in contract order."""
    return [LinePlanner("bass"), LinePlanner("counter"), HarmonyPlanner(), DrumPlanner()]


def grid_starts(estimate: np.ndarray, trigger: int, subdivision: int = 2) -> np.ndarray | None:
    """Where in each bin a note starts so that it sounds on the beat grid: per bin, the frame of
    the grid point (beats and their `subdivision`) that falls inside it, else its middle; None
    when the tempo/key estimate (its published vector at `trigger`) holds no confident tempo.

    The estimate's beats are analysis frames, whose onset strength peaks GRID_LEAD_FRAMES after
    the sound; plan frame n is heard at (n + 1) * 4 ms + latency, so the grid moves earlier by that.
    """
    tempo_bpm, confidence, period = estimate[0], estimate[1], estimate[5]
    if tempo_bpm <= 0.0 or period <= 0.0 or confidence < GRID_MIN_CONFIDENCE:
        return None
    step = period / subdivision
    last_beat = trigger - 1 - estimate[6] - GRID_LEAD_FRAMES
    first_frame = trigger + LOOKAHEAD_FRAMES
    starts = np.full(HORIZON_BINS, START_OFFSET, dtype=np.int64)
    for h in range(HORIZON_BINS):
        begin = first_frame + h * BIN_FRAMES
        point = last_beat + np.ceil((begin - last_beat) / step) * step
        if point < begin + BIN_FRAMES:
            starts[h] = int(round(point - begin)) if point - begin < BIN_FRAMES - 0.5 else START_OFFSET
    return starts
