"""`launch.py build-index`: songs -> chunk embeddings, summaries and parts -> the chunk index.

Two kinds of source folder:
- a multitrack corpus in one of training/data's layouts (the rendered corpus, Slakh, BabySlakh,
  LSX, URMP): its feature cache is brought up to date first (training/data's executor: a local
  process pool or a Dask/Ray cluster, with a progress bar), then each song's *leader* stem
  (role "melody", else the highest non-drum stem) is chunked and embedded, and every stem's note
  labels (from the MIDI) are stored once per song; stems without labels store 50 Hz curves.
- a folder of plain audio files (`--dataset audio`): each file is one song and its own leader,
  analysed here, stored as curves, and referenced by path for playback.
Songs go in batches, each one incremental add (see `store`), so a killed build keeps every
finished batch and `--add` continues it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from engine.errors import TuttiError
from engine.rates import CONTROL_RATE_HZ
from engine.retrieval import spec
from engine.retrieval.embedding import embed_song
from engine.retrieval.parts import Part, curves_from_frames, key_from_notes, notes_between, notes_from_seconds
from engine.retrieval.store import OUTPUT_NAMES, ChunkIndex, SongEntry
from engine.safe_files import claim_output_dir

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
ANALYSIS_RATE_HZ = 16000
BATCH_SONGS = 64


@dataclass(frozen=True)
class BuildOptions:
    """Where songs come from and how the feature stage runs."""

    root: Path
    out: Path
    dataset: str = "auto"  # a training/data dataset name, "audio", or "auto"
    cache_dir: Path | None = None  # default: ROOT/features (where prepare-data puts it)
    add: bool = False
    force: bool = False
    executor: str = "local"
    workers: int = 1
    scheduler: str | None = None


@dataclass
class BuildReport:
    songs_added: int = 0
    songs_present: int = 0
    chunks_added: int = 0
    chunks_total: int = 0
    skipped: list[tuple[str, str]] | None = None
    wall_s: float = 0.0


def detect_dataset(root: Path) -> str:
    """"tutti" for a folder of Slakh-layout tracks, "audio" for a folder of audio files."""
    if any(root.glob("Track*/metadata.yaml")) or any(root.glob("*/Track*/metadata.yaml")):
        return "tutti"
    if any(p.suffix.lower() in AUDIO_SUFFIXES for p in root.rglob("*") if p.is_file()):
        return "audio"
    raise TuttiError(f"{root} holds neither Slakh-layout tracks (TrackNNNNN/metadata.yaml) nor audio files: check --root")


def pick_leader(stems, notes: dict[str, np.ndarray]) -> str:
    """The stem a player would play: role "melody" first, else the highest-sounding non-drum stem."""
    melodic = [s for s in stems if not s.is_drum]
    for stem in melodic:
        if stem.role == "melody":
            return stem.name
    if not melodic:
        raise TuttiError("the song has no pitched stem to lead")
    with_notes = [s for s in melodic if s.name in notes and len(notes[s.name])]
    if with_notes:
        return max(with_notes, key=lambda s: float(np.median(notes[s.name][:, 2]))).name
    return melodic[0].name


def _track_tempo(stem_path: Path | None) -> float | None:
    """tempo_qpm from the track's metadata.yaml (the rendered corpus records it), if any."""
    if stem_path is None:
        return None
    import yaml

    meta = stem_path.parent.parent / "metadata.yaml"
    try:
        value = (yaml.safe_load(meta.read_text()) or {}).get("tempo_qpm")
    except (OSError, yaml.YAMLError):
        return None
    return float(value) if value else None


def _chunk_keys(notes: np.ndarray, n_chunks: int, fallback: int) -> np.ndarray:
    keys = np.full(n_chunks, fallback, dtype=np.int64)
    for i in range(n_chunks):
        inside = notes_between(notes, i * spec.HOP_S, i * spec.HOP_S + spec.CHUNK_S)
        if len(inside):
            keys[i] = key_from_notes(inside)[0]
    return keys


def entry_from_cache(item, cache_dir: Path) -> SongEntry:
    """A corpus song (training/data `SongItem`) from its feature cache; TuttiError if unusable."""
    from engine.tempo_key import estimate_tempo
    from training.data.cache import load_features, song_folder

    folder = song_folder(cache_dir, item.song_id)
    notes: dict[str, np.ndarray] = {}
    for stem in item.stems:
        path = folder / f"{stem.name}.notes.npy"
        if path.is_file():
            labels = np.load(path)
            notes[stem.name] = notes_from_seconds(labels["onset_s"], labels["offset_s"], labels["pitch"], labels["velocity"])
    leader = pick_leader(item.stems, notes)
    frames = np.asarray(load_features(cache_dir, item.song_id, leader), dtype=np.float64)
    vectors, summaries = embed_song(frames)
    parts = []
    for stem in item.stems:
        is_leader = stem.name == leader
        if stem.name in notes:
            parts.append(Part(stem.name, stem.role, stem.program_num, stem.is_drum, is_leader, notes=notes[stem.name]))
        elif stem.audio_path is not None:
            curves = curves_from_frames(np.asarray(load_features(cache_dir, item.song_id, stem.name)))
            parts.append(Part(stem.name, stem.role, stem.program_num, stem.is_drum, is_leader, curves=curves))
    pitched = [notes[s.name] for s in item.stems if s.name in notes and not s.is_drum]
    all_notes = np.concatenate(pitched) if pitched else np.zeros((0, 4), dtype=np.int32)
    tonic, mode = key_from_notes(all_notes)
    tempo = _track_tempo(next((s.audio_path for s in item.stems if s.audio_path), None))
    if tempo is None:
        tempo = estimate_tempo(frames[:, 3])[0]
    return SongEntry(
        song_key=item.song_id, dataset=item.dataset, split=item.split, tempo_bpm=tempo, key_tonic=tonic,
        key_mode=mode, n_frames=frames.shape[0], leader=leader, vectors=vectors, summaries=summaries,
        chunk_keys=_chunk_keys(all_notes, len(vectors), tonic), parts=parts,
    )


def entry_from_audio(path: Path, root: Path) -> SongEntry:
    """A plain audio file as a one-stem song: analysed here, stored as 50 Hz curves, by path."""
    from engine.audio_io import read_mono
    from engine.features.streaming import StreamingAnalyzer
    from engine.retrieval.plan import player_tempo_key

    frames = StreamingAnalyzer(ANALYSIS_RATE_HZ).analyze(read_mono(path, ANALYSIS_RATE_HZ)).values
    vectors, summaries = embed_song(frames)
    estimate = player_tempo_key(frames)
    part = Part("audio", "melody", -1, False, True, curves=curves_from_frames(frames))
    return SongEntry(
        song_key=f"audio/{path.relative_to(root).as_posix()}", dataset="audio", split="train",
        tempo_bpm=estimate.tempo_bpm, key_tonic=estimate.key_tonic, key_mode=estimate.key_mode,
        n_frames=frames.shape[0], leader="audio", vectors=vectors, summaries=summaries,
        chunk_keys=np.full(len(vectors), estimate.key_tonic), parts=[part], source_path=str(path.resolve()),
    )


def _corpus_items(options: BuildOptions, dataset: str, stream: TextIO) -> tuple[list, Path, list]:
    """The dataset's items with a current feature cache: the cache is (re)built only for songs
    whose features are missing or stale, through training/data's feature stage."""
    from training.data.cache import FeatureSettings
    from training.data.loaders import load_dataset
    from training.data.manifest import Manifest
    from training.data.prepare import RunOptions, plan_features, prepare_features

    cache_dir = options.cache_dir or options.root / "features"
    settings = FeatureSettings(cache_dir)
    items, load_skips = load_dataset(dataset, options.root)
    bad = {s.song_id: s.reason for s in load_skips}
    if plan_features(items, Manifest(cache_dir), settings):
        report = prepare_features(dataset, options.root, settings,
                                  RunOptions(options.executor, options.workers, options.scheduler), stream)
        bad |= {s.song_id: s.reason for s in report.skipped}
    return [i for i in items if i.song_id not in bad], cache_dir, list(bad.items())


def open_for_build(options: BuildOptions) -> ChunkIndex:
    """Claim the output folder (the --force rule) and open the index to add to, or a new one."""
    claim_output_dir(options.out, force=options.force or options.add, command="build-index",
                     names=OUTPUT_NAMES + ("README.md",), resume=options.add)
    if options.add and (options.out / "index.sqlite").is_file():
        return ChunkIndex.open(options.out, writable=True)
    return ChunkIndex.create(options.out)


def build_index(options: BuildOptions, stream: TextIO = sys.stderr) -> BuildReport:
    """Index every song of `options.root` into `options.out` (or add the new ones with `add`)."""
    import time

    from training.data.progress import Progress

    started = time.perf_counter()
    root = Path(options.root)
    if not root.is_dir():
        raise TuttiError(f"source folder {root} does not exist: check --root")
    dataset = detect_dataset(root) if options.dataset == "auto" else options.dataset
    report = BuildReport(skipped=[])
    if dataset == "audio":
        sources = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        keys = [f"audio/{p.relative_to(root).as_posix()}" for p in sources]
        make = lambda p: entry_from_audio(p, root)  # noqa: E731
    else:
        sources, cache_dir, skipped = _corpus_items(options, dataset, stream)
        report.skipped += skipped
        keys = [item.song_id for item in sources]
        make = lambda item: entry_from_cache(item, cache_dir)  # noqa: E731
    index = open_for_build(options)
    try:
        todo = [(key, source) for key, source in zip(keys, sources) if key not in index.song_by_key]
        report.songs_present = len(keys) - len(todo)
        progress = Progress("index", len(todo), stream)
        batch: list[SongEntry] = []
        for key, source in todo:
            try:
                entry = make(source)
                if len(entry.vectors) == 0:
                    raise TuttiError(f"shorter than one {spec.CHUNK_S:.0f} s chunk")
            except TuttiError as err:
                report.skipped.append((key, str(err)))
                progress.advance(skipped=True)
                continue
            batch.append(entry)
            progress.advance(entry.n_frames / float(CONTROL_RATE_HZ))
            if len(batch) >= BATCH_SONGS:
                report.chunks_added += index.add_songs(batch)
                report.songs_added += len(batch)
                batch = []
        if batch:
            report.chunks_added += index.add_songs(batch)
            report.songs_added += len(batch)
        progress.close()
        report.chunks_total = len(index)
    finally:
        index.close()
    report.wall_s = time.perf_counter() - started
    return report
