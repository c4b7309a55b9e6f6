"""What each follower role truly plays, per predicted bin: the conductor's training targets.

A song's parts are read from the feature cache (note labels and each stem's loudness) and
mapped to roles by musical function: the leader is the melody part; bass is the part marked
bass; counter-line is the highest inner part; harmony is the pitch-class set of every
non-leader part sounding, its register their mean pitch, its loudness the power sum of the
inner parts; drums are the drum part, where a song has one (generated accompaniment only).

Times are acoustic: for the step ending at frame t (its trigger), bin h covers plan frames
n in [t + L + h*BIN_FRAMES, ... + BIN_FRAMES), heard at (n + 1) * 4 ms + the nominal device
latency; a bin's note and chord are those sounding at its middle frame, its onset is any
note starting within it, its loudness the stem's mean over it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.conductor.contract import (
    BIN_FRAMES, FRAME_S, HORIZON_BINS, LOOKAHEAD_FRAMES, NOMINAL_DEVICE_LATENCY_S, NOTE_RANGES,
    REGISTER_CENTRE, REGISTER_SPAN, STEP_FRAMES,
    n_note_classes, scale_loudness,
)

SOUNDING_DB = -70.0   # a part's loudness is judged where its stem is louder than this
SILENT_DB = -100.0


@dataclass
class Part:
    """One stem of a song: its role in the corpus, note labels (NOTE_DTYPE) and loudness per frame."""

    role: str
    notes: np.ndarray
    loudness_db: np.ndarray

    @property
    def mean_pitch(self) -> float:
        return float(self.notes["pitch"].mean()) if len(self.notes) else 0.0


def frame_times(n_frames: int) -> np.ndarray:
    """When plan frame n is heard, in seconds after the leader's sound: (n + 1) * 4 ms + latency."""
    return (np.arange(n_frames) + 1) * FRAME_S + NOMINAL_DEVICE_LATENCY_S


def sounding_pitch(notes: np.ndarray, times: np.ndarray, lowest: bool) -> np.ndarray:
    """MIDI pitch sounding at each time (-1: none); where notes overlap, the lowest (bass) or
    the one that started last."""
    pitch = np.full(len(times), -1, dtype=np.int64)
    order = np.argsort(-notes["pitch"], kind="stable") if lowest else np.argsort(notes["onset_s"], kind="stable")
    for note in notes[order]:
        first, last = np.searchsorted(times, (note["onset_s"], note["offset_s"]))
        pitch[first:last] = note["pitch"]
    return pitch


def pitch_class_sets(parts: list[Part], times: np.ndarray) -> np.ndarray:
    """[n, 12] 1 where any of the parts sounds that pitch class at that time."""
    sets = np.zeros((len(times), 12))
    for part in parts:
        for note in part.notes:
            first, last = np.searchsorted(times, (note["onset_s"], note["offset_s"]))
            sets[first:last, note["pitch"] % 12] = 1.0
    return sets


def onset_frames(parts: list[Part], times: np.ndarray) -> np.ndarray:
    """[n] 1 at the frame whose 4 ms span holds a note onset of any of the parts."""
    marks = np.zeros(len(times))
    for part in parts:
        index = np.searchsorted(times, part.notes["onset_s"], side="right") - 1
        marks[index[(index >= 0) & (index < len(times))]] = 1.0
    return marks


def loudness_at(parts: list[Part], times: np.ndarray) -> np.ndarray:
    """The power sum of the parts' loudness (dB) at each time (the feature frame ending then)."""
    index = np.clip(np.round(times / FRAME_S).astype(np.int64) - 1, 0, None)
    power = np.zeros(len(times))
    for part in parts:
        values = np.asarray(part.loudness_db, dtype=np.float64)
        power += np.where(index < len(values), 10.0 ** (values[np.minimum(index, len(values) - 1)] / 10.0), 0.0)
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), SILENT_DB)


@dataclass
class RoleTracks:
    """Per plan frame of a song: each role's pitch (-1 rest), onsets, loudness, the chord."""

    present: dict[str, bool]
    pitch: dict[str, np.ndarray]      # bass, counter: MIDI or -1
    onset: dict[str, np.ndarray]
    loudness_db: dict[str, np.ndarray]
    chord: np.ndarray                 # [n, 12] pitch classes of every non-leader part
    register: np.ndarray              # mean MIDI pitch of the non-leader, non-bass parts sounding (0: none)
    leader_pitch: np.ndarray


def role_tracks(parts: list[Part], n_frames: int) -> RoleTracks:
    """Map a song's parts to roles and sample them at the acoustic time of every plan frame."""
    times = frame_times(n_frames)
    leader = [p for p in parts if p.role == "melody"][:1]
    others = [p for p in parts if p not in leader and p.role != "drums"]
    bass = [p for p in others if p.role == "bass"][:1]
    inner = [p for p in others if p not in bass]
    counter = sorted([p for p in inner if p.role == "counter"], key=lambda p: -p.mean_pitch)[:1]
    drums = [p for p in parts if p.role == "drums"]
    chord = pitch_class_sets(others, times)
    register_sum, register_count = np.zeros(n_frames), np.zeros(n_frames)
    for part in inner:
        pitch = sounding_pitch(part.notes, times, lowest=False)
        register_sum += np.where(pitch >= 0, pitch, 0)
        register_count += pitch >= 0
    return RoleTracks(
        present={"bass": bool(bass), "counter": bool(counter), "harmony": bool(others), "drums": bool(drums)},
        pitch={"bass": sounding_pitch(bass[0].notes, times, lowest=True) if bass else np.full(n_frames, -1),
               "counter": sounding_pitch(counter[0].notes, times, lowest=False) if counter else np.full(n_frames, -1)},
        onset={"bass": onset_frames(bass, times), "counter": onset_frames(counter, times),
               "harmony": onset_frames(inner, times), "drums": onset_frames(drums, times)},
        loudness_db={"bass": loudness_at(bass, times), "counter": loudness_at(counter, times),
                     "harmony": loudness_at(inner, times), "drums": loudness_at(drums, times)},
        chord=chord,
        register=np.where(register_count > 0, register_sum / np.maximum(register_count, 1), 0.0),
        leader_pitch=sounding_pitch(leader[0].notes, times, lowest=False) if leader else np.full(n_frames, -1),
    )


def note_class(role: str, pitch: np.ndarray) -> np.ndarray:
    """Class index of MIDI pitches (folded by octaves into the role's range); rest (-1) last."""
    low, high = NOTE_RANGES[role]
    folded = pitch.copy()
    while np.any((folded >= 0) & (folded < low)):
        folded = np.where((folded >= 0) & (folded < low), folded + 12, folded)
    while np.any(folded > high):
        folded = np.where(folded > high, folded - 12, folded)
    return np.where(pitch < 0, n_note_classes(role) - 1, folded - low)


def bin_frames(n_steps: int) -> np.ndarray:
    """[n_steps, HORIZON_BINS, BIN_FRAMES] plan-frame numbers of every step's bins."""
    triggers = (np.arange(n_steps) + 1) * STEP_FRAMES
    starts = triggers[:, None] + LOOKAHEAD_FRAMES + BIN_FRAMES * np.arange(HORIZON_BINS)[None, :]
    return starts[:, :, None] + np.arange(BIN_FRAMES)[None, None, :]


def step_targets(tracks: RoleTracks, n_steps: int) -> dict[str, np.ndarray]:
    """Training targets [n_steps, HORIZON_BINS, ...] for every step, with masks (1 = judged)."""
    frames = bin_frames(n_steps)
    n_frames = len(tracks.chord)
    frames = np.minimum(frames, n_frames - 1)
    valid = (bin_frames(n_steps) < n_frames).all(axis=2).astype(np.float32)  # bins inside the song
    middle = frames[:, :, BIN_FRAMES // 2]
    out: dict[str, np.ndarray] = {}
    for role in ("bass", "counter"):
        out[f"{role}_note"] = note_class(role, tracks.pitch[role][middle]).astype(np.int64)
        out[f"{role}_note_mask"] = valid * tracks.present[role]
    for role in ("bass", "counter", "harmony", "drums"):
        out[f"{role}_onset"] = tracks.onset[role][frames].max(axis=2).astype(np.float32)
        out[f"{role}_onset_mask"] = valid * tracks.present[role]
        loudness = tracks.loudness_db[role][frames]
        sounding = loudness > SOUNDING_DB
        mean_db = np.where(sounding, loudness, 0.0).sum(axis=2) / np.maximum(sounding.sum(axis=2), 1)
        out[f"{role}_loudness"] = scale_loudness(mean_db).astype(np.float32)
        out[f"{role}_loudness_mask"] = (valid * tracks.present[role] * (sounding.mean(axis=2) >= 0.5)).astype(np.float32)
    out["harmony_pitch_classes"] = tracks.chord[middle].astype(np.float32)
    out["harmony_pitch_classes_mask"] = valid * tracks.present["harmony"]
    register = tracks.register[middle]
    out["harmony_register"] = ((register - REGISTER_CENTRE) / REGISTER_SPAN).astype(np.float32)
    out["harmony_register_mask"] = (valid * (register > 0)).astype(np.float32)
    return {k: v.astype(np.float32) if k.endswith("_mask") else v for k, v in out.items()}
