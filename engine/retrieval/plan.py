"""A continuation path -> what each stem plays after the join, on the player's timeline.

Each step is a CHUNK_S stretch of an indexed song. Its stems' notes (or curves) are cut out
(every note sounding in it, a held note cut at the chunk's edges),
transposed by the step's `transpose`, time-scaled by `stretch` (the song's tempo over the
player's, when the player's tempo is known and the ratio is moderate), and laid end to end from
the join. `control_frames` turns one stem's plan into engine feature frames (f0, voicing,
loudness; 250 per second) that any Tutti voice can play, so a live part source and the offline
`extend` drive voices the same way.

Beat alignment: `player_tempo_key` finds the player's tempo, key and last beat (the tempo/key
task's estimators); `join_offset_s` delays the join by less than one beat so that the continuation's first
song beat lands on the player's next beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.features.frames import CHROMA, F0, LOUDNESS, N_FEATURES, ONSET, VOICING
from engine.rates import CONTROL_RATE_HZ
from engine.retrieval import spec
from engine.retrieval.parts import CURVE_STEP_FRAMES, Part
from engine.retrieval.query import Continuation
from engine.retrieval.store import ChunkIndex

STRETCH_LIMITS = (0.7, 1.4)
PREROLL_S = 0.1  # content taken from just before each path's first chunk, for the crossfade


@dataclass(frozen=True)
class StemPlan:
    """One stem's part after the join: `notes` float [n, 4] (onset_s, offset_s, MIDI pitch,
    velocity) relative to the join, or `curves` float [m, 2] (semitones or 0, dB) at 50 Hz from
    `-PREROLL_S`. Times already transposed and stretched."""

    name: str
    role: str
    program_num: int
    is_drum: bool
    is_leader: bool
    notes: np.ndarray | None
    curves: np.ndarray | None


@dataclass(frozen=True)
class Plan:
    """The stems of one path, the time scale applied, and the song beat offset of its start."""

    stems: tuple[StemPlan, ...]
    stretch: float
    first_beat_s: float  # after the join, where the first song beat falls (player's time)
    duration_s: float

    @property
    def leader(self) -> StemPlan:
        return next(s for s in self.stems if s.is_leader)


def choose_stretch(song_tempo_bpm: float, player_tempo_bpm: float | None) -> float:
    """Song time -> player time factor; 1 unless the player's tempo is known and close enough."""
    if not player_tempo_bpm or song_tempo_bpm <= 0:
        return 1.0
    ratio = song_tempo_bpm / player_tempo_bpm
    for factor in (1.0, 2.0, 0.5):  # a song twice or half as fast is the same beat
        if STRETCH_LIMITS[0] <= ratio * factor <= STRETCH_LIMITS[1]:
            return ratio * factor
    return 1.0


def _step_parts(index: ChunkIndex, song: int, cache: dict[int, list[Part]]) -> list[Part]:
    if song not in cache:
        cache[song] = index.parts(song)
    return cache[song]


def plan_path(index: ChunkIndex, path: Continuation, player_tempo_bpm: float | None = None) -> Plan:
    """Each stem's notes (or curves) along `path`, from PREROLL_S before the join to its end."""
    first_song = index.songs[path.first.song]
    stretch = choose_stretch(first_song.tempo_bpm, player_tempo_bpm)
    cache: dict[int, list[Part]] = {}
    gathered: dict[str, dict] = {}
    for j, step in enumerate(path.steps):
        begin = step.start_s - (PREROLL_S if j == 0 else 0.0)
        end = step.start_s + spec.CHUNK_S
        # stems are matched by role and order from the first song on (a jump may change songs)
        for rank, part in enumerate(_step_parts(index, step.song, cache)):
            key = "leader" if part.is_leader else f"{part.role}:{rank}"
            slot = gathered.setdefault(key, {"part": part, "notes": [], "curves": []})
            origin = j * spec.CHUNK_S - step.start_s  # song time -> path time (before stretch)
            if part.notes is not None:
                onset = part.notes[:, 0] / 1000.0
                offset = onset + part.notes[:, 1] / 1000.0
                inside = (onset < end) & (offset > begin)  # held notes too, cut at the edges
                notes = np.column_stack([
                    np.maximum(onset[inside], begin) + origin, np.minimum(offset[inside], end) + origin,
                    part.notes[inside, 2] + (0 if part.is_drum else step.transpose), part.notes[inside, 3],
                ]).astype(np.float64)
                slot["notes"].append(notes)
            else:
                rate = CONTROL_RATE_HZ / CURVE_STEP_FRAMES
                lo, hi = max(0, int(round(begin * rate))), int(round(end * rate))
                curves = part.curves[lo:hi].astype(np.float64)
                curves[:, 0] = np.where(curves[:, 0] > 0, curves[:, 0] + step.transpose, 0.0)
                slot["curves"].append(curves)
    stems = []
    for slot in gathered.values():
        part = slot["part"]
        notes = curves = None
        if slot["notes"]:
            notes = np.concatenate(slot["notes"])
            notes[:, :2] *= stretch
        if slot["curves"]:
            curves = np.concatenate(slot["curves"])
        stems.append(StemPlan(part.name, part.role, part.program_num, part.is_drum, part.is_leader, notes, curves))
    beat_s = 60.0 / first_song.tempo_bpm if first_song.tempo_bpm > 0 else spec.CHUNK_S
    start = path.first.start_s
    first_beat = (math.ceil(start / beat_s - 1e-6) * beat_s - start) * stretch
    return Plan(tuple(stems), stretch, first_beat, len(path.steps) * spec.CHUNK_S * stretch)


@dataclass(frozen=True)
class PlayerTempoKey:
    """The player's tempo and key from recent frames; `last_beat_s` is the time of the most
    recent beat, counted from the first frame given."""

    tempo_bpm: float
    tempo_confidence: float
    key_tonic: int
    key_mode: str
    key_confidence: float
    last_beat_s: float


def player_tempo_key(frames: np.ndarray) -> PlayerTempoKey:
    """Tempo (onset autocorrelation), beat (onset comb) and key (Krumhansl-Kessler) of `frames`."""
    from engine.tempo_key import estimate_beat_offset, estimate_key, estimate_tempo

    tempo, tempo_confidence = estimate_tempo(frames[:, ONSET])
    voiced = frames[:, VOICING] >= 0.5
    weights = np.where(voiced, 10.0 ** (frames[:, LOUDNESS] / 20.0), 0.0)
    tonic, mode, key_confidence = estimate_key(frames[:, CHROMA], weights)
    period = CONTROL_RATE_HZ * 60.0 / tempo if tempo > 0 else 0.0
    last_beat = (len(frames) - 1 - estimate_beat_offset(frames[:, ONSET], period)) / CONTROL_RATE_HZ
    return PlayerTempoKey(tempo, tempo_confidence, tonic, mode, key_confidence, last_beat)


def join_offset_s(clip_end_s: float, beat_s_at: float, tempo_bpm: float, first_beat_s: float) -> float:
    """Delay (0..one beat) after the clip's end at which to start the continuation so that its
    first song beat (at `first_beat_s` into it) lands on one of the player's beats (one of them
    falls at `beat_s_at`)."""
    beat_s = 60.0 / tempo_bpm
    target = clip_end_s + first_beat_s  # where that beat would fall with no delay
    next_beat = beat_s_at + math.ceil((target - beat_s_at) / beat_s - 1e-9) * beat_s
    return float((next_beat - target) % beat_s)


def control_frames(stem: StemPlan, n_frames: int, level_db: float, *, lowest: bool = False) -> np.ndarray:
    """[n_frames, 16] feature frames playing `stem` from the join (frame 0 = PREROLL_S before it).

    Where notes overlap, the highest sounds (the lowest with `lowest`, for a bass). Loudness is
    `level_db` shifted by each note's velocity (20 log10(velocity / 100)); one silent frame
    before each onset lets a voice re-attack a repeated pitch.
    """
    frames = np.zeros((n_frames, N_FEATURES))
    frames[:, LOUDNESS] = -100.0
    start = -PREROLL_S
    if stem.notes is not None and len(stem.notes):
        order = np.argsort(-stem.notes[:, 2] if lowest else stem.notes[:, 2])  # the winner is written last
        for onset, offset, pitch, velocity in stem.notes[order]:
            a = max(0, int(round((onset - start) * CONTROL_RATE_HZ)))
            b = min(n_frames, int(round((offset - start) * CONTROL_RATE_HZ)))
            if b <= a + 1:
                continue
            frames[a, VOICING] = 0.0
            frames[a, LOUDNESS] = -100.0
            frames[a + 1:b, F0] = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
            frames[a + 1:b, VOICING] = 1.0
            frames[a + 1:b, LOUDNESS] = level_db + 20.0 * np.log10(max(velocity, 1.0) / 100.0)
            frames[a + 1, ONSET] = 1.0
    elif stem.curves is not None and len(stem.curves):
        up = np.repeat(stem.curves, CURVE_STEP_FRAMES, axis=0)[:n_frames]
        voiced = up[:, 0] > 0
        frames[: len(up), F0] = np.where(voiced, 440.0 * 2.0 ** ((up[:, 0] - 69.0) / 12.0), 0.0)
        frames[: len(up), VOICING] = voiced
        frames[: len(up), LOUDNESS] = np.where(voiced, up[:, 1] - np.median(up[voiced, 1]) + level_db if voiced.any() else -100.0, -100.0)
    return frames
