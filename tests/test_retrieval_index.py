"""The chunk index: build, query, dedup, incremental add, and refusal of bad index files."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import hnswlib
import numpy as np
import pytest

from engine.errors import TuttiError
from engine.features.streaming import StreamingAnalyzer
from engine.retrieval import spec
from engine.retrieval.build import BuildOptions, build_index
from engine.retrieval.embedding import chunk_summary, embed_chunk
from engine.retrieval.parts import Part
from engine.retrieval.query import QuerySettings, _candidates, _same_region, retrieve
from engine.retrieval.seam import seam_terms
from engine.retrieval.store import DB_NAME, ChunkIndex, SongEntry
from tests.retrieval_fixtures import MOTIFS, SONGS, make_corpus, render_notes, song_notes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("retrieval") / "corpus")


@pytest.fixture(scope="module")
def index_dir(corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "index"
    report = build_index(BuildOptions(root=corpus, out=out))
    assert report.songs_added == len(SONGS) and not report.skipped
    return out


def _player_frames(first_motif: int, transpose: int) -> np.ndarray:
    """Two motifs played in another timbre at 48 kHz, analysed live-style."""
    melody, _ = song_notes(first_motif, 2, transpose)
    audio = render_notes(melody, 4.0, rate_hz=48000, brightness=0.25).astype(np.float32)
    return StreamingAnalyzer(48000).analyze(audio).values


def _leader_pitches(index: ChunkIndex, step) -> list[int]:
    lead = next(p for p in index.parts(step.song) if p.is_leader)
    start_ms = step.start_s * 1000
    inside = lead.notes[(lead.notes[:, 0] >= start_ms) & (lead.notes[:, 0] < start_ms + 2000)]
    return (inside[:, 2] + step.transpose).tolist()


def _copy(index_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(index_dir, target)
    return target


def test_index_layout_and_chunk_count(index_dir: Path) -> None:
    index = ChunkIndex.open(index_dir)
    # 16.5 s songs: chunks start every second while 2 s still fit -> 15 per song
    assert len(index) == 15 * len(SONGS)
    assert [s.n_chunks for s in index.songs] == [15] * len(SONGS)
    assert {s.leader for s in index.songs} == {"S00"}
    assert all(s.tempo_bpm == 120.0 for s in index.songs)
    parts = index.parts(0)
    assert [p.name for p in parts] == ["S00", "S01"] and all(p.kind == "notes" for p in parts)
    assert len(parts[0].notes) == 4 * 8  # stored once per song, not per chunk
    assert list(index_dir.joinpath("hnsw").glob("*.hnsw")) and (index_dir / DB_NAME).is_file()


def test_query_in_another_timbre_and_key_finds_what_follows(index_dir: Path) -> None:
    index = ChunkIndex.open(index_dir)
    frames = _player_frames(2, transpose=1)  # motifs 2, 3 a semitone up: motif 4 follows
    results = retrieve(index, frames, QuerySettings(top_k=5))
    expected = [p + 1 for p in MOTIFS[4]]
    assert len(results) == 5
    for path in results:
        assert _leader_pitches(index, path.first) == expected
        assert path.first.relevance > 0.95
    # songs hold motif 4 at transpositions 0, 3, -2, 5: each is brought to the player's +1
    song_transpose = {i: t for i, (_, _, t) in enumerate(SONGS)}
    for path in results:
        assert (song_transpose[path.first.song] + path.first.transpose - 1) % 12 == 0


def test_dedup_keeps_one_continuation_per_song_region(index_dir: Path) -> None:
    index = ChunkIndex.open(index_dir)
    frames = _player_frames(0, transpose=0)
    context = frames[-spec.CHUNK_FRAMES:]
    raw = _candidates(index, embed_chunk(context), chunk_summary(context), tuple(range(-6, 6)), 0,
                      QuerySettings(candidates=24), np.zeros(len(index.songs)))
    assert any(_same_region(a, b) for i, a in enumerate(raw) for b in raw[i + 1:])  # duplicates exist before dedup
    results = retrieve(index, frames, QuerySettings(top_k=40, beam_width=40))
    firsts = [p.first for p in results]
    assert len(firsts) >= 10
    assert not any(_same_region(a, b) for i, a in enumerate(firsts) for b in firsts[i + 1:])
    assert [p.score for p in results] == sorted((p.score for p in results), reverse=True)


def test_beam_search_paths_follow_their_songs(index_dir: Path) -> None:
    index = ChunkIndex.open(index_dir)
    results = retrieve(index, _player_frames(2, transpose=0), QuerySettings(top_k=3, steps=3))
    assert results and all(len(p.steps) == 3 for p in results)
    successor = {MOTIFS[i]: MOTIFS[(i + 1) % len(MOTIFS)] for i in range(len(MOTIFS))}
    for path in results:
        for a, b in zip(path.steps, path.steps[1:]):
            # each step continues the motif sequence, at one transposition for the whole path
            pa, pb = np.array(_leader_pitches(index, a)), np.array(_leader_pitches(index, b))
            shift = next(t for t in range(-12, 13) if tuple(pa - t) in successor)
            assert tuple(pb - shift) == successor[tuple(pa - shift)]


def test_seam_ranks_a_smooth_join_above_a_jump() -> None:
    rate = 250
    t = np.arange(2 * rate) / rate
    frames = np.zeros((2 * rate, 16))
    frames[:, 0], frames[:, 1], frames[:, 2] = 220.0, 1.0, -20.0 - 2.0 * np.sin(2 * np.pi * t)
    frames[:, 4 + 9] = 1.0  # A
    before = chunk_summary(frames)
    smooth = frames.copy()
    jump = frames.copy()
    jump[:, 0] = 220.0 * 2 ** (11 / 12)  # a major seventh up
    jump[:, 2] = np.where(t < 0.25, 0.0, -20.0)  # a 20 dB burst at the join
    jump[:, 4:16] = 0.0
    jump[:, 4 + 3] = 1.0  # E flat: a tritone away
    terms = seam_terms(before, np.stack([chunk_summary(smooth), chunk_summary(jump)]), np.array([0, 0]))
    assert terms["score"][0] > 0.7  # a 2 dB contour step between the edges remains
    assert terms["score"][0] > 3 * terms["score"][1]
    assert terms["loudness_jump_db"][1] > 15 and terms["leap_semitones"][1] == pytest.approx(11, abs=0.1)


def test_hnsw_recall_against_the_brute_force_twin(index_dir: Path) -> None:
    """Recall@10 of the spec's HNSW settings vs hnswlib's BFIndex, on 6000 vectors drawn like real chunks."""
    index = ChunkIndex.open(index_dir)
    real = index.vectors(np.arange(len(index)))
    rng = np.random.default_rng(0)
    base = real[rng.integers(0, len(real), 6000)] + rng.normal(0, 0.08, (6000, spec.EMBEDDING_DIM)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[rng.integers(0, 6000, 200)] + rng.normal(0, 0.05, (200, spec.EMBEDDING_DIM)).astype(np.float32)
    hnsw = hnswlib.Index(space="cosine", dim=spec.EMBEDDING_DIM)
    hnsw.init_index(max_elements=6000, ef_construction=spec.HNSW_EF_CONSTRUCTION, M=spec.HNSW_M, random_seed=1)
    hnsw.add_items(base, num_threads=1)
    hnsw.set_ef(spec.HNSW_EF_SEARCH)
    exact = hnswlib.BFIndex(space="cosine", dim=spec.EMBEDDING_DIM)
    exact.init_index(max_elements=6000)
    exact.add_items(base)
    found, _ = hnsw.knn_query(queries, k=10, num_threads=1)
    truth, _ = exact.knn_query(queries, k=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
    assert recall > 0.95


def test_incremental_add_equals_a_full_build(corpus: Path, index_dir: Path, tmp_path: Path) -> None:
    half = tmp_path / "half"
    half.mkdir()
    for track in sorted(corpus.glob("Track*"))[:3]:
        shutil.copytree(track, half / track.name)
    shutil.copytree(corpus / "features", half / "features")
    out = tmp_path / "index"
    build_index(BuildOptions(root=half, out=out))
    assert len(ChunkIndex.open(out).songs) == 3
    report = build_index(BuildOptions(root=corpus, out=out, add=True))
    assert report.songs_present == 3 and report.songs_added == 3
    full, grown = ChunkIndex.open(index_dir), ChunkIndex.open(out)
    assert [s.song_key for s in full.songs] == [s.song_key for s in grown.songs]
    np.testing.assert_array_equal(full.vectors(np.arange(len(full))), grown.vectors(np.arange(len(grown))))
    assert len(list((out / "hnsw").glob("*.hnsw"))) == 1  # the old generation is gone
    for first, transpose in ((0, 0), (3, 2)):
        frames = _player_frames(first, transpose)
        a = [(p.first.song, p.first.start_s, p.first.transpose) for p in retrieve(full, frames)]
        b = [(p.first.song, p.first.start_s, p.first.transpose) for p in retrieve(grown, frames)]
        assert a == b


def test_a_failed_add_leaves_the_old_index_whole(index_dir: Path, tmp_path: Path) -> None:
    folder = _copy(index_dir, tmp_path)
    index = ChunkIndex.open(folder, writable=True)
    before = len(index)
    part = Part("S00", "melody", 0, False, True, notes=np.zeros((1, 4), dtype=np.int32))
    entry = SongEntry("new/song", "tutti", "train", 120.0, 0, "major", 1000, "S00",
                      vectors=index.vectors(np.arange(3)), summaries=index.summaries[:3],
                      chunk_keys=np.zeros(3, dtype=int), parts=[part, part])  # duplicate part: the insert fails
    with pytest.raises(TuttiError, match="cannot add"):
        index.add_songs([entry])
    reopened = ChunkIndex.open(folder)
    assert len(reopened) == before and "new/song" not in reopened.song_by_key
    assert len(list((folder / "hnsw").glob("*.hnsw"))) == 1


@pytest.mark.parametrize("damage, message", [
    ("spec", "another embedding spec"),
    ("feature_version", "feature version 0"),
    ("truncate_hnsw", "truncated"),
    ("flip_hnsw", "sha256"),
    ("garbage_sqlite", "not a readable chunk index"),
    ("missing", "no chunk index"),
])
def test_refuses_a_mismatched_or_damaged_index(index_dir: Path, tmp_path: Path, damage: str, message: str) -> None:
    folder = _copy(index_dir, tmp_path)
    db = folder / DB_NAME
    hnsw_file = next((folder / "hnsw").glob("*.hnsw"))
    if damage in ("spec", "feature_version"):
        with sqlite3.connect(db) as connection:
            if damage == "spec":
                changed = dict(spec.embedding_spec(), chunk_frames=250)
                connection.execute("UPDATE meta SET value = ? WHERE key = 'embedding_spec'", (json.dumps(changed),))
            else:
                connection.execute("UPDATE meta SET value = '0' WHERE key = 'feature_version'")
    elif damage == "truncate_hnsw":
        hnsw_file.write_bytes(hnsw_file.read_bytes()[:1000])
    elif damage == "flip_hnsw":
        data = bytearray(hnsw_file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        hnsw_file.write_bytes(bytes(data))
    elif damage == "garbage_sqlite":
        db.write_bytes(b"this is not a database" * 100)
    else:
        db.unlink()
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(TuttiError, match=message) as caught:
        ChunkIndex.open(folder)
    assert "\n" not in str(caught.value)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # nothing overwritten


def test_query_refuses_an_empty_index_a_short_context_and_silence(index_dir: Path, tmp_path: Path) -> None:
    empty = ChunkIndex.create(tmp_path / "empty")
    frames = _player_frames(0, 0)
    with pytest.raises(TuttiError, match="empty"):
        retrieve(empty, frames)
    index = ChunkIndex.open(index_dir)
    with pytest.raises(TuttiError, match="needs 2 s"):
        retrieve(index, frames[:300])
    silent = frames.copy()
    silent[:, 1], silent[:, 2] = 0.0, -100.0
    with pytest.raises(TuttiError, match="no pitched sound"):
        retrieve(index, silent)


def test_a_folder_of_plain_audio_is_indexed_as_curves_with_its_paths(tmp_path: Path) -> None:
    import soundfile as sf

    from engine.retrieval.parts import CURVE_RATE_HZ

    folder = tmp_path / "takes"
    folder.mkdir()
    for number, first in enumerate((0, 3)):
        melody, _ = song_notes(first, 3, 0)
        sf.write(folder / f"take{number}.wav", render_notes(melody, 6.0, rate_hz=22050), 22050)
    out = tmp_path / "index"
    report = build_index(BuildOptions(root=folder, out=out))
    assert report.songs_added == 2 and not report.skipped
    index = ChunkIndex.open(out)
    assert [s.dataset for s in index.songs] == ["audio", "audio"]
    assert index.songs[0].source_path == str((folder / "take0.wav").resolve())
    (part,) = index.parts(0)
    assert part.kind == "curves" and part.is_leader
    assert len(part.curves) == pytest.approx(6.0 * CURVE_RATE_HZ, abs=2)
    voiced = part.curves[:, 0] > 0
    # the curve holds the melody's pitches: motif 0 is C E G C' at 0.5 s each
    assert np.median(part.curves[:25][voiced[:25], 0]) == pytest.approx(60, abs=0.5)
    assert np.median(part.curves[25:50][voiced[25:50], 0]) == pytest.approx(64, abs=0.5)


def test_a_build_killed_at_any_moment_leaves_a_whole_index(corpus: Path, tmp_path: Path) -> None:
    """SIGKILL an `--add` (one song per batch, so several HNSW generations) at staggered moments:
    every time, the index opens and holds a whole number of songs with all their chunks."""
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    code = (
        "import sys; sys.path.insert(0, {repo!r})\n"
        "from pathlib import Path\n"
        "import engine.retrieval.build as b\n"
        "b.BATCH_SONGS = 1\n"
        "print('ready', flush=True)\n"
        "b.build_index(b.BuildOptions(root=Path({root!r}), out=Path({out!r}), add=True))\n"
    )
    seen = set()
    for delay in (0.0, 0.05, 0.1, 0.2, 0.4):
        out = tmp_path / f"index{delay}"
        process = subprocess.Popen([sys.executable, "-c", code.format(repo=str(repo), root=str(corpus), out=str(out))],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if not (out / DB_NAME).is_file():
            seen.add(-1)  # killed before the index existed: nothing to open
            continue
        index = ChunkIndex.open(out)
        assert len(index) == sum(s.n_chunks for s in index.songs) == 15 * len(index.songs)
        assert len(list((out / "hnsw").glob("*.hnsw"))) <= 2  # at most the live file and one in flight
        seen.add(len(index.songs))
        # and the interrupted build continues where it stopped
        build_index(BuildOptions(root=corpus, out=out, add=True))
        assert len(ChunkIndex.open(out).songs) == len(SONGS)
    assert seen  # which states the kills land in varies with the machine's load
