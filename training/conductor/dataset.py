"""The conductor's training data: per song, leader input steps and role targets, cached.

Songs come from a feature cache's manifest (prepare-data): the leader is the stem marked
melody, and every song needs one. Each song's arrays are computed once (the tempo/key estimate
per step dominates: about 0.2 ms a step) into `<cache>/conductor-v<N>/<song>.npz`, written
atomically and rebuilt when the cache's features change. `WindowSampler` draws windows of
CONTEXT_STEPS steps (zero rows before a song's start, as live) for the causal model.
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.conductor.contract import CONTEXT_STEPS, FORMAT_VERSION, STEP_FRAMES
from engine.conductor.inputs import song_inputs
from engine.errors import TuttiError
from engine.features.frames import FEATURE_VERSION, LOUDNESS
from engine.safe_files import atomic_write_bytes
from training.data.cache import load_features, song_folder
from training.data.manifest import Manifest
from training.conductor.augment import random_shift, transpose
from training.conductor.targets import Part, role_tracks, step_targets

CACHE_NAME = f"conductor-v{FORMAT_VERSION}"


@dataclass
class SongData:
    """One song's input steps [S, N_INPUTS] and targets {name: [S, HORIZON_BINS, ...]}."""

    song_id: str
    generated: bool
    inputs: np.ndarray
    targets: dict[str, np.ndarray]

    @property
    def n_steps(self) -> int:
        return len(self.inputs)


def songs_of(cache_dir: Path, split: str) -> list[dict]:
    """Manifest records of the usable songs of `split` (status ok, a melody stem, note labels)."""
    manifest = Manifest(cache_dir)
    if not manifest.records:
        raise TuttiError(f"no feature manifest under {cache_dir}: run prepare-data render (or features) first")
    chosen = []
    for song_id, record in sorted(manifest.records.items()):
        stems = record.get("stems", [])
        if record.get("status") != "ok" or record.get("split") != split:
            continue
        if any(s.get("role") == "melody" for s in stems) and all(s.get("has_notes") for s in stems):
            generated = any(s.get("source") == "generated" for s in stems)
            chosen.append(record | {"generated": generated})
    return chosen


def _fingerprint(record: dict) -> str:
    text = json.dumps([record.get("content_hash"), record.get("feature_version"), FEATURE_VERSION, FORMAT_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def song_parts(cache_dir: Path, record: dict) -> tuple[list[Part], Path]:
    """Every stem of a song as a Part (role, note labels, loudness), and the leader's audio file."""
    song_id = record["song_id"]
    folder = song_folder(cache_dir, song_id)
    parts, leader = [], None
    for stem in record["stems"]:
        features = load_features(cache_dir, song_id, stem["name"])
        role = "drums" if stem.get("is_drum") else stem.get("role", "counter")
        parts.append(Part(role, np.load(folder / f"{stem['name']}.notes.npy"), np.asarray(features[:, LOUDNESS], dtype=np.float64)))
        if role == "melody" and leader is None:
            leader = stem
    if leader is None:
        raise TuttiError(f"song {song_id} has no melody part to lead: it cannot train or test the conductor")
    return parts, Path(leader["path"])


def build_song(cache_dir: Path, record: dict) -> SongData:
    """Compute one song's inputs (from the leader's cached features) and targets."""
    parts, _ = song_parts(cache_dir, record)
    leader = next(stem for stem in record["stems"] if stem.get("role") == "melody" and not stem.get("is_drum"))
    inputs = song_inputs(np.asarray(load_features(cache_dir, record["song_id"], leader["name"]), dtype=np.float64))
    n_steps = len(inputs)
    tracks = role_tracks(parts, (n_steps + 1) * STEP_FRAMES + 64)
    return SongData(record["song_id"], bool(record.get("generated")), inputs.astype(np.float32),
                    step_targets(tracks, n_steps))


def _cached_song(job: tuple[Path, dict]) -> SongData:
    cache_dir, record = job
    path = cache_dir / CACHE_NAME / (song_folder(Path(), record["song_id"]).as_posix().replace("/", "__") + ".npz")
    fingerprint = _fingerprint(record)
    if path.is_file():
        with np.load(path) as saved:
            if str(saved["fingerprint"]) == fingerprint:
                targets = {k[len("t_"):]: saved[k] for k in saved.files if k.startswith("t_")}
                return SongData(record["song_id"], bool(record.get("generated")),
                                saved["inputs"], targets)
    song = build_song(cache_dir, record)
    buffer = io.BytesIO()
    np.savez(buffer, fingerprint=np.array(fingerprint), inputs=song.inputs,
             **{f"t_{k}": v for k, v in song.targets.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return song


def load_songs(cache_dir: Path, split: str, workers: int = 1) -> list[SongData]:
    """Every usable song of `split`, from the conductor cache or built (in `workers` processes)."""
    jobs = [(cache_dir, record) for record in songs_of(cache_dir, split)]
    if workers <= 1 or len(jobs) <= 1:
        return [_cached_song(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_cached_song, jobs, chunksize=4))


def mean_leader_loudness(songs: list[SongData]) -> float:
    """The leaders' mean level over their voiced steps (the step's peak loudness, dB)."""
    from engine.conductor.contract import unscale_loudness
    from engine.conductor.inputs import input_slices

    slices = input_slices()
    levels = [unscale_loudness(song.inputs[song.inputs[:, slices["voiced"].start] > 0.5, slices["loudness"].start])
              for song in songs]
    levels = np.concatenate(levels) if levels else np.zeros(0)
    return float(levels.mean()) if len(levels) else -30.0


class WindowSampler:
    """Windows of CONTEXT_STEPS consecutive steps ending at a uniformly drawn step of any song."""

    def __init__(self, songs: list[SongData], transpose: bool = False) -> None:
        if not songs:
            raise TuttiError("no songs with a melody part and note labels in this split: render or prepare more data")
        self.songs = songs
        self.transpose = transpose  # shift each window by a random interval (training only)
        self._ends = np.cumsum([song.n_steps for song in songs])

    @property
    def hours(self) -> float:
        return float(self._ends[-1]) * STEP_FRAMES / 250.0 / 3600.0

    def window(self, song: SongData, end: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """Rows, targets and a padding mask for the window whose last step is `end`."""
        first = end - CONTEXT_STEPS + 1
        take = slice(max(first, 0), end + 1)
        pad = max(0, -first)
        inputs = np.zeros((CONTEXT_STEPS, song.inputs.shape[1]), dtype=np.float32)
        inputs[pad:] = song.inputs[take]
        targets = {}
        for name, values in song.targets.items():
            padded = np.zeros((CONTEXT_STEPS, *values.shape[1:]), dtype=values.dtype)
            padded[pad:] = values[take]
            targets[name] = padded
        real = np.zeros(CONTEXT_STEPS, dtype=np.float32)
        real[pad:] = 1.0
        return inputs, targets, real

    def batch(self, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        picks = rng.integers(0, int(self._ends[-1]), size)
        song_index = np.searchsorted(self._ends, picks, side="right")
        windows = []
        for pick, index in zip(picks, song_index):
            song = self.songs[index]
            window = self.window(song, int(pick - (self._ends[index] - song.n_steps)))
            if self.transpose:
                transpose(window[0], window[1], random_shift(rng))
            windows.append(window)
        batch = {"inputs": np.stack([w[0] for w in windows]), "real": np.stack([w[2] for w in windows])}
        for name in windows[0][1]:
            batch[name] = np.stack([w[1][name] for w in windows])
        return batch
