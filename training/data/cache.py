"""The feature cache: the engine's features per stem and per mix, plus note labels, on disk.

Layout under the cache folder, one folder per song (its id, made path-safe):

    <song>/<stem>.npy        float32 [n_frames, 16], columns FEATURE_NAMES, 250 frames a second
    <song>/mix.npy           the same for the mix (the sum of the stems where none ships)
    <song>/<stem>.notes.npy  NOTE_DTYPE labels, where MIDI, URMP notes or a score exist
    <song>/features.json     feature version, rate, frames per stem, content hash; written last

`load_features` opens an array as a read-only memmap after checking the version. A song is
current when its manifest record has this FEATURE_VERSION and rate and its audio files still
have the sizes and mtimes recorded; otherwise it is rebuilt. A song whose audio is unreadable,
or whose stems differ in rate or length, is skipped with its reason.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from engine.audio_io import read_mono
from engine.errors import TuttiError
from engine.safe_files import atomic_path, atomic_write_text
from engine.features.frames import FEATURE_NAMES, FEATURE_VERSION
from training.data.executors import worker_identity
from training.data.items import SongItem
from training.data.labels import stem_notes
from training.data.manifest import Record, content_hash, file_stamp

FRAME_RATE_HZ = 250
INDEX_NAME = "features.json"
LENGTH_TOLERANCE_S = 0.05  # stems of one song may differ by this much (a codec's padding)
_ANALYZERS: dict[int, Any] = {}  # one StreamingAnalyzer per process and rate (compiling costs ~1 s)


@dataclass(frozen=True)
class FeatureSettings:
    """Where the cache lives and the rate features are computed at (16 or 24 kHz)."""

    cache_dir: Path
    sample_rate_hz: int = 16000


def song_folder(cache_dir: Path, song_id: str) -> Path:
    """The cache folder of a song: its id with anything but [A-Za-z0-9._/-] replaced by '_',
    and empty, '.' and '..' parts too, so that no id (a metadata.yaml's) leads out of the cache."""
    parts = re.sub(r"[^A-Za-z0-9._/-]", "_", song_id).split("/")
    return cache_dir.joinpath(*(part if part not in ("", ".", "..") else "_" for part in parts))


def is_current(record: Record | None, item: SongItem, settings: FeatureSettings) -> bool:
    """True when the cache holds this item's features at this version and rate, inputs unchanged."""
    if record is None or record.get("status") != "ok" or record.get("feature_version") != FEATURE_VERSION:
        return False
    if record.get("feature_rate_hz") != settings.sample_rate_hz:
        return False
    if not (song_folder(settings.cache_dir, item.song_id) / INDEX_NAME).is_file():
        return False
    try:
        return record.get("stamp") == file_stamp(item.audio_paths)
    except OSError:
        return False


def _analyzer(sample_rate_hz: int):
    if sample_rate_hz not in _ANALYZERS:
        from engine.features.streaming import StreamingAnalyzer

        _ANALYZERS[sample_rate_hz] = StreamingAnalyzer(sample_rate_hz)
    return _ANALYZERS[sample_rate_hz]


def check_audio(item: SongItem) -> tuple[int, float]:
    """(sample rate, duration s) shared by all of the item's files; TuttiError naming the odd one."""
    infos = {}
    for path in item.audio_paths:
        try:
            infos[path] = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as err:
            raise TuttiError(f"{path.name} is not readable audio ({' '.join(str(err).split())})") from None
    rates = {path: info.samplerate for path, info in infos.items()}
    first = next(iter(infos))
    for path, rate in rates.items():
        if rate != rates[first]:
            raise TuttiError(f"{path.name} is at {rate} Hz, {first.name} at {rates[first]} Hz")
    durations = {path: info.frames / info.samplerate for path, info in infos.items()}
    longest = max(durations, key=durations.get)
    for path, duration in durations.items():
        if durations[longest] - duration > LENGTH_TOLERANCE_S:
            raise TuttiError(f"{path.name} lasts {duration:.2f} s, {longest.name} {durations[longest]:.2f} s")
    return rates[first], durations[longest]


def _save_array(path: Path, values: np.ndarray) -> None:
    """One .npy file, written atomically."""
    with atomic_path(path) as temporary:
        np.save(temporary, values)


def _build(item: SongItem, settings: FeatureSettings) -> Record:
    """Write the song's cache folder; the record fields it adds to the manifest."""
    folder = song_folder(settings.cache_dir, item.song_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INDEX_NAME).unlink(missing_ok=True)  # the folder is incomplete until it is rewritten
    frames: dict[str, int] = {}
    stems_out = []
    rate_hz, duration_s = check_audio(item) if item.audio_paths else (0, 0.0)
    signals = {}
    for stem in item.stems:
        if stem.audio_path is not None:
            signals[stem.name] = read_mono(stem.audio_path, settings.sample_rate_hz)
        notes = stem_notes(item, stem)
        if notes is not None:
            _save_array(folder / f"{stem.name}.notes.npy", notes)
            duration_s = max(duration_s, float(notes["offset_s"].max(initial=0.0)))
        stems_out.append({
            "name": stem.name, "path": str(stem.audio_path) if stem.audio_path else None, "role": stem.role,
            "inst_class": stem.inst_class, "program_num": stem.program_num, "is_drum": stem.is_drum,
            "source": stem.source, "has_notes": notes is not None,
        })
    if signals:
        if item.mix_path is not None:
            signals["mix"] = read_mono(item.mix_path, settings.sample_rate_hz)
        else:
            mix = np.zeros(max(map(len, signals.values())), dtype=np.float32)
            for signal in signals.values():
                mix[: len(signal)] += signal
            signals["mix"] = mix
    for name, signal in signals.items():
        values = _analyzer(settings.sample_rate_hz).analyze(signal).values.astype(np.float32)
        _save_array(folder / f"{name}.npy", values)
        frames[name] = int(values.shape[0])
    digest = content_hash(item.audio_paths) if item.audio_paths else None
    index = {
        "song_id": item.song_id, "feature_version": FEATURE_VERSION, "feature_names": list(FEATURE_NAMES),
        "sample_rate_hz": settings.sample_rate_hz, "frame_rate_hz": FRAME_RATE_HZ, "frames": frames,
        "content_hash": digest,
    }
    atomic_write_text(folder / INDEX_NAME, json.dumps(index, indent=1))
    return {
        "content_hash": digest, "duration_s": duration_s, "analysed_s": sum(len(x) for x in signals.values()) / settings.sample_rate_hz, "sample_rate_hz": rate_hz, "stems": stems_out,
        "feature_version": FEATURE_VERSION, "feature_rate_hz": settings.sample_rate_hz,
        "features_dir": folder.relative_to(settings.cache_dir).as_posix(), "stamp": file_stamp(item.audio_paths),
    }


def extract_features(job: tuple[SongItem, FeatureSettings]) -> Record:
    """Task: build one song's cache; a manifest record, ok or skipped with a one-line reason."""
    item, settings = job
    started = time.perf_counter()
    record: dict[str, Any] = {"song_id": item.song_id, "dataset": item.dataset, "split": item.split}
    try:
        record |= _build(item, settings) | {"status": "ok", "reason": None}
    except (TuttiError, OSError, ValueError) as err:
        record |= {"status": "skipped", "reason": " ".join(str(err).split()) or type(err).__name__}
    return record | {"worker": worker_identity(), "task_s": time.perf_counter() - started}


def load_features(cache_dir: Path, song_id: str, name: str = "mix") -> np.ndarray:
    """The cached [n_frames, 16] features of a stem (or "mix") as a read-only memmap."""
    folder = song_folder(cache_dir, song_id)
    try:
        index = json.loads((folder / INDEX_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        raise TuttiError(f"no feature cache for {song_id} under {cache_dir}: run prepare-data features") from None
    if index["feature_version"] != FEATURE_VERSION:
        raise TuttiError(
            f"the cache of {song_id} has feature version {index['feature_version']}, the engine "
            f"{FEATURE_VERSION}: rerun prepare-data features to rebuild it"
        )
    return np.load(folder / f"{name}.npy", mmap_mode="r")
