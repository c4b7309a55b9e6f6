"""Scores to arranged, humanised parts: the musical half of the corpus render.

A music21 score becomes `PartPlan`s: notes in seconds (NOTE_DTYPE), a GM program from a family
plan (one ensemble per song, or a mix of families), a role by register (top line: melody,
lowest: bass, inner lines: counter), and humanised timing (onset jitter, detached durations)
and velocity (metric accents). A melody-only tune (Essen) gets generated accompaniment that
follows its key and metre: a bass line, chords on keys or guitar, and drums on the GM drum
channel; those parts carry `source="generated"`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import TuttiError
from training.data.labels import note_array

# Family: (GM program, lowest MIDI pitch, highest MIDI pitch) of each instrument it offers.
FAMILIES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "strings": ((40, 55, 103), (41, 48, 91), (42, 36, 76), (43, 28, 67)),
    "winds": ((73, 60, 96), (68, 58, 91), (71, 50, 91), (65, 49, 81), (70, 34, 75)),
    "brass": ((56, 54, 82), (60, 41, 77), (57, 40, 72), (58, 28, 58)),
    "keys": ((0, 21, 108), (6, 29, 89), (19, 24, 96), (4, 28, 103)),
    "guitar": ((24, 40, 84), (25, 40, 84), (26, 40, 86)),
    "bass": ((32, 28, 67), (33, 28, 67), (35, 28, 67)),
}
ENSEMBLES = ("strings", "winds", "brass", "keys")
TEMPO_RANGES_QPM = {"chorale": (60, 84), "quartet": (72, 126), "palestrina": (100, 140), "essen": (84, 132)}
TEMPO_LIMITS_QPM = (40.0, 200.0)  # a score's own mark outside this is ignored as implausible
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 11)}
CHORD_PRIORS = {"major": {0: 0.5, 4: 0.35, 3: 0.3, 5: 0.1, 1: 0.1}, "minor": {0: 0.5, 4: 0.35, 3: 0.3, 5: 0.1}}
KICK, SNARE, HIHAT, CRASH = 36, 38, 42, 49

# A line in score time: (onset in quarter notes, duration in quarter notes, MIDI pitch).
Line = list[tuple[float, float, int]]


@dataclass(frozen=True)
class Metre:
    """Bar and beat lengths in quarter notes, and where the first full bar starts (after a pickup)."""

    bar_ql: float
    beat_ql: float
    n_beats: int
    anchor_ql: float


@dataclass(frozen=True)
class PartPlan:
    """One part ready to write as MIDI: humanised notes in seconds and what plays them."""

    name: str
    role: str
    source: str
    program_num: int
    is_drum: bool
    notes: np.ndarray


def parse_score(path: Path, number: int | None = None):
    """A music21 Score from a kern, abc (tune `number`), MusicXML or MIDI file; TuttiError if not."""
    from music21 import converter, stream

    try:
        parsed = converter.parse(str(path), number=number) if number is not None else converter.parse(str(path))
    except Exception as err:  # music21 raises many unrelated types for a bad score
        raise TuttiError(f"music21 cannot parse {path.name}{f' #{number}' if number else ''}: {type(err).__name__}: {err}".splitlines()[0]) from None
    if isinstance(parsed, stream.Opus):
        if not parsed.scores:
            raise TuttiError(f"{path.name} holds no tunes")
        parsed = parsed.scores[0]
    return parsed


def _part_line(part) -> Line:
    """A part's notes with tied notes merged (music21's stripTies is ~40x slower on a quartet)."""
    rows: Line = []
    tied: dict[int, int] = {}  # pitch: index in rows of the note a tie continues
    for element in part.flatten().notes:
        duration = float(element.quarterLength)
        if duration <= 0:  # grace notes
            continue
        for note in element.notes if element.isChord else (element,):
            pitch, tie = int(note.pitch.midi), note.tie.type if note.tie is not None else None
            if tie in ("continue", "stop") and pitch in tied:
                onset, length, _ = rows[tied[pitch]]
                rows[tied[pitch]] = (onset, float(element.offset) + duration - onset, pitch)
            else:
                rows.append((float(element.offset), duration, pitch))
                tied[pitch] = len(rows) - 1
            if tie not in ("start", "continue"):
                tied.pop(pitch, None)
    return rows


def score_lines(score) -> list[tuple[str, Line]]:
    """(part name, notes) of every part with notes, ties merged, chords split into notes."""
    lines = []
    for index, part in enumerate(score.parts):
        rows = _part_line(part)
        if rows:
            lines.append((str(part.partName or f"part{index + 1}"), rows))
    return lines


def score_tempo_qpm(score, kind: str, rng: np.random.Generator) -> float:
    """The score's first plausible metronome mark, else a tempo drawn from the kind's range."""
    from music21 import tempo

    for mark in score.recurse().getElementsByClass(tempo.MetronomeMark):
        qpm = mark.getQuarterBPM()
        if qpm is not None and TEMPO_LIMITS_QPM[0] <= qpm <= TEMPO_LIMITS_QPM[1]:
            return float(qpm)
    low, high = TEMPO_RANGES_QPM[kind]
    return float(rng.uniform(low, high))


def score_metre(score) -> Metre:
    """The first time signature (4/4 if none) and the pickup length of the first part."""
    from music21 import meter, stream

    part = score.parts[0]
    signature = next(iter(part.recurse().getElementsByClass(meter.TimeSignature)), None) or meter.TimeSignature("4/4")
    bar_ql = float(signature.barDuration.quarterLength)
    measures = part.getElementsByClass(stream.Measure)
    first_ql = float(measures[0].duration.quarterLength) if len(measures) else bar_ql
    anchor = first_ql if 0 < first_ql < bar_ql - 1e-6 else 0.0
    return Metre(bar_ql, float(signature.beatDuration.quarterLength), int(signature.beatCount), anchor)


def melody_notes(path: Path, number: int | None = None) -> np.ndarray:
    """The first part of a score as notes in seconds, at the score's tempo (or 120 qpm), unhumanised."""
    score = parse_score(path, number)
    lines = score_lines(score)
    if not lines:
        raise TuttiError(f"{path.name} has no notes")
    from music21 import tempo

    marks = [m.getQuarterBPM() for m in score.recurse().getElementsByClass(tempo.MetronomeMark)]
    seconds_per_ql = 60.0 / next((q for q in marks if q), 120.0)
    return note_array([(on * seconds_per_ql, (on + dur) * seconds_per_ql, p, 80) for on, dur, p in lines[0][1]])


def choose_instrument(family: str, pitches: np.ndarray, rng: np.random.Generator) -> int:
    """A program of `family` whose range holds the most of `pitches` (ties broken at random)."""
    options = FAMILIES[family]
    fits = np.array([np.mean((pitches >= low) & (pitches <= high)) for _, low, high in options])
    best = [options[i][0] for i in np.flatnonzero(fits >= fits.max() - 0.02)]
    return int(rng.choice(best))


def _chords(melody: Line, metre: Metre, tonic_pc: int, mode: str, end_ql: float) -> list[tuple[float, float, tuple[int, ...]]]:
    """(start, length, pitch classes) of one diatonic triad per window (half bar in 4+ beats, else a bar)."""
    scale = SCALES[mode]
    triads = {d: tuple((tonic_pc + scale[(d + k) % 7]) % 12 for k in (0, 2, 4)) for d in CHORD_PRIORS[mode]}
    window = metre.bar_ql / 2 if metre.n_beats >= 4 else metre.bar_ql
    chords = []
    start = metre.anchor_ql
    while start < end_ql - 1e-6:
        stop = min(start + window, end_ql)
        weights = {pc: 0.0 for pc in range(12)}
        for onset, duration, pitch in melody:
            weights[pitch % 12] += max(0.0, min(onset + duration, stop) - max(onset, start))
        is_last = stop >= end_ql - 1e-6
        def score(degree: int) -> float:
            fit = sum(w if pc in triads[degree] else -0.5 * w for pc, w in weights.items())
            return fit + CHORD_PRIORS[mode][degree] * window * 0.25 + (window if is_last and degree == 0 else 0.0)
        chords.append((start, stop - start, triads[max(triads, key=score)]))
        start = stop
    return chords


def accompaniment(melody: Line, metre: Metre, tonic_pc: int, mode: str) -> dict[str, Line]:
    """Generated bass, chords and drums under `melody`, following its harmony and metre."""
    end_ql = max(onset + duration for onset, duration, _ in melody)
    bass: Line = []
    chords: Line = []
    for start, length, triad in _chords(melody, metre, tonic_pc, mode, end_ql):
        root = 40 + (triad[0] - 4) % 12  # E2..D#3
        half = length / 2 if length >= 2 * metre.beat_ql else length
        bass.append((start, half, root))
        if half < length:
            fifth = root + 7 if root + 7 <= 52 else root - 5
            bass.append((start + half, length - half, fifth))
        voicing = [55 + (pc - 7) % 12 for pc in triad]  # close position, G3..F#4
        beat = start
        while beat < start + length - 1e-6:
            on_downbeat = abs((beat - metre.anchor_ql) % metre.bar_ql) < 1e-6
            if not (metre.n_beats == 3 and on_downbeat):  # oom-pah-pah in triple metre
                chords += [(beat, 0.9 * min(metre.beat_ql, start + length - beat), p) for p in voicing]
            beat += metre.beat_ql
    drums: Line = []
    subdivision = metre.beat_ql / 3 if metre.beat_ql > 1.0 else metre.beat_ql / 2
    bar = metre.anchor_ql
    while bar < end_ql - 1e-6:
        for b in range(metre.n_beats):
            beat = bar + b * metre.beat_ql
            if beat >= end_ql - 1e-6:
                break
            if b == 0 or (metre.n_beats == 4 and b == 2):
                drums.append((beat, 0.1, KICK))
            if metre.n_beats in (2, 4) and b % 2 == 1:
                drums.append((beat, 0.1, SNARE))
            drums += [(beat + k * subdivision, 0.1, HIHAT) for k in range(round(metre.beat_ql / subdivision))]
        bar += metre.bar_ql
    drums.append((metre.anchor_ql, 0.1, CRASH))
    return {"bass": bass, "chords": chords, "drums": drums}


def humanise(line: Line, seconds_per_ql: float, metre: Metre, rng: np.random.Generator, is_drum: bool) -> np.ndarray:
    """Notes in seconds: onsets jittered (sd 8 ms, within 25 ms), notes detached 3-12 %,
    velocity = a per-part base + metric accent (bar 10, beat 4) + noise (sd 5)."""
    base = rng.uniform(62, 96)
    rows = []
    for onset, duration, pitch in line:
        position = (onset - metre.anchor_ql) % metre.bar_ql
        accent = 10 if position < 1e-6 else 4 if abs(position / metre.beat_ql - round(position / metre.beat_ql)) < 1e-6 else 0
        start = max(0.0, onset * seconds_per_ql + float(np.clip(rng.normal(0, 0.008), -0.025, 0.025)))
        length = 0.1 if is_drum else max(0.05, duration * seconds_per_ql * rng.uniform(0.88, 0.97))
        velocity = int(np.clip(base + accent + rng.normal(0, 5), 25, 120))
        rows.append((start, start + length, pitch, velocity))
    return note_array(rows)


def _roles(lines: list[tuple[str, Line]]) -> list[str]:
    means = [np.mean([p for _, _, p in rows]) for _, rows in lines]
    order = np.argsort(means)
    roles = ["counter"] * len(lines)
    if len(lines) > 1:
        roles[order[0]] = "bass"
    roles[order[-1]] = "melody"
    return roles


def arrange(score, kind: str, rng: np.random.Generator) -> tuple[list[PartPlan], float]:
    """The score's parts (plus generated accompaniment when it has one part) and its tempo in qpm."""
    lines = score_lines(score)
    if not lines:
        raise TuttiError("the score has no notes")
    tempo_qpm = score_tempo_qpm(score, kind, rng)
    metre = score_metre(score)
    ensemble = str(rng.choice(ENSEMBLES + ("mixed",)))
    plans = []
    for (name, line), role in zip(lines, _roles(lines)):
        family = str(rng.choice(ENSEMBLES + ("guitar",))) if ensemble == "mixed" else ensemble
        if role == "bass" and rng.random() < 0.25:
            family = "bass"
        program = choose_instrument(family, np.array([p for _, _, p in line]), rng)
        plans.append((name, role, "composed", program, False, line))
    if len(lines) == 1:
        key = score.analyze("key")
        extra = accompaniment(lines[0][1], metre, key.tonic.pitchClass, "minor" if key.mode == "minor" else "major")
        bass_family = "bass" if rng.random() < 0.5 else ensemble if ensemble != "mixed" else "strings"
        plans.append(("bass", "bass", "generated", choose_instrument(bass_family, np.array([40, 52]), rng), False, extra["bass"]))
        chord_family = str(rng.choice(("keys", "guitar")))
        plans.append(("chords", "harmony", "generated", choose_instrument(chord_family, np.array([55, 66]), rng), False, extra["chords"]))
        plans.append(("drums", "drums", "generated", 0, True, extra["drums"]))
    seconds_per_ql = 60.0 / tempo_qpm
    return [
        PartPlan(name, role, source, program, is_drum, humanise(line, seconds_per_ql, metre, rng, is_drum))
        for name, role, source, program, is_drum, line in plans
    ], tempo_qpm

