"""Note and f0 labels: from MIDI files (mido), URMP's annotation files, or a score (music21)."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np

from engine.errors import TuttiError
from training.data.items import NOTE_DTYPE, SongItem, Stem


def note_array(rows: list[tuple[float, float, int, int]]) -> np.ndarray:
    """Rows (onset_s, offset_s, pitch, velocity) as a NOTE_DTYPE array sorted by onset, pitch."""
    notes = np.array(rows, dtype=NOTE_DTYPE) if rows else np.zeros(0, dtype=NOTE_DTYPE)
    return np.sort(notes, order=("onset_s", "pitch"))


def notes_from_midi(path: Path) -> np.ndarray:
    """Every note of a MIDI file in seconds (tempo map applied), all channels together."""
    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise TuttiError(f"MIDI file {path} is unreadable ({err}): re-export it") from None
    if midi.ticks_per_beat <= 0:  # the top bit of the division set: SMPTE time, which Tutti does not read
        raise TuttiError(f"MIDI file {path} has SMPTE or zero timing ({midi.ticks_per_beat} ticks per beat): re-export it with ticks per beat")
    time_s = 0.0
    sounding: dict[tuple[int, int], list[tuple[float, int]]] = {}
    rows: list[tuple[float, float, int, int]] = []
    for message in midi:  # iterating a MidiFile yields delta times in seconds
        time_s += message.time
        if message.type not in ("note_on", "note_off"):
            continue
        key = (message.channel, message.note)
        if message.type == "note_on" and message.velocity > 0:
            sounding.setdefault(key, []).append((time_s, message.velocity))
        elif sounding.get(key):
            onset_s, velocity = sounding[key].pop(0)
            rows.append((onset_s, time_s, message.note, velocity))
    return note_array(rows)


def _read_columns(path: Path, n_columns: int) -> np.ndarray:
    try:
        table = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as err:
        raise TuttiError(f"annotation file {path} is unreadable ({err}): restore it from the dataset") from None
    if table.size and table.shape[1] < n_columns:
        raise TuttiError(f"annotation file {path} has {table.shape[1]} columns, URMP's has {n_columns}")
    return table.reshape(-1, max(table.shape[1], n_columns))


def hz_to_midi(f0_hz: np.ndarray) -> np.ndarray:
    """Nearest MIDI pitch of frequencies in Hz."""
    return np.rint(69.0 + 12.0 * np.log2(np.asarray(f0_hz, dtype=np.float64) / 440.0)).astype(int)


def notes_from_urmp(path: Path) -> np.ndarray:
    """URMP `Notes_*.txt` (onset s, pitch Hz, duration s per line) as notes, velocity 64."""
    table = _read_columns(path, 3)
    onsets, hz, durations = table[:, 0], table[:, 1], table[:, 2]
    good = np.isfinite(onsets) & (onsets >= 0) & np.isfinite(durations) & (durations >= 0) & (hz >= 8.0) & (hz <= 12600.0)
    if not np.all(good):
        line = int(np.argmin(good)) + 1
        raise TuttiError(f"annotation file {path} has no valid note on row {line} ({' '.join(f'{v:g}' for v in table[line - 1, :3])}): restore it from the dataset")
    pitches = hz_to_midi(hz)
    return note_array([(on, on + dur, int(p), 64) for on, dur, p in zip(table[:, 0], table[:, 2], pitches)])


def f0_from_urmp(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """URMP `F0s_*.txt` as (times_s, f0_hz); f0 is 0 where the player is silent."""
    table = _read_columns(path, 2)
    if not np.all(np.isfinite(table[:, :2])):
        raise TuttiError(f"annotation file {path} holds NaN or Inf: restore it from the dataset")
    return table[:, 0], table[:, 1]


def stem_notes(item: SongItem, stem: Stem) -> np.ndarray | None:
    """The stem's note labels, or None where the dataset has none for it."""
    if stem.midi_path is not None and stem.midi_path.is_file():
        return notes_from_midi(stem.midi_path)
    if stem.notes_path is not None and stem.notes_path.is_file():
        return notes_from_urmp(stem.notes_path)
    if item.score_path is not None:
        from training.data.scores import melody_notes

        return melody_notes(item.score_path, item.score_number)
    return None
