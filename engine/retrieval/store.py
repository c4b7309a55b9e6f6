"""The chunk index on disk: SQLite metadata and parts, one hnswlib file of embeddings.

Folder layout (DESIGN.md section 7):

    index.sqlite          meta (format, feature version, embedding spec, the live HNSW file and
                          its size and sha256), songs, chunks (song, position, key, tempo, seam
                          summary), parts (what each stem plays, once per song)
    hnsw/chunks.G.hnsw    hnswlib (cosine) over every chunk's embedding, label = chunk id;
                          G is a generation number that grows with every add

Incremental add writes the next generation's HNSW file completely (a temporary name, then a
rename), then commits one SQLite transaction that adds the songs and points `meta` at the new
file, then deletes the old file. A kill at any moment leaves either the old index or the new
one whole. Opening checks the format, feature version and embedding spec (refusing another),
the SQLite file's integrity, and the HNSW file's size and sha256 before hnswlib reads it, so a
truncated or damaged file is a one-line TuttiError, never a crash.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import hnswlib
import numpy as np

from engine.errors import TuttiError
from engine.models.sidecar import file_sha256
from engine.retrieval import spec
from engine.retrieval.embedding import SUMMARY_DIM
from engine.retrieval.parts import Part, decode, encode
from engine.safe_files import atomic_path

FORMAT = "tutti-chunk-index-1"
DB_NAME = "index.sqlite"
HNSW_DIR = "hnsw"
OUTPUT_NAMES = (DB_NAME, f"{DB_NAME}-journal", f"{HNSW_DIR}/")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE songs (
    id INTEGER PRIMARY KEY, song_key TEXT UNIQUE NOT NULL, dataset TEXT, split TEXT,
    tempo_bpm REAL, key_tonic INTEGER, key_mode TEXT, n_frames INTEGER, first_chunk INTEGER,
    n_chunks INTEGER, leader TEXT, source_path TEXT);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, song INTEGER NOT NULL, position INTEGER NOT NULL, start_s REAL,
    key_tonic INTEGER, tempo_bpm REAL, summary BLOB NOT NULL);
CREATE TABLE parts (
    song INTEGER NOT NULL, name TEXT NOT NULL, role TEXT, program_num INTEGER, is_drum INTEGER,
    is_leader INTEGER, kind TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (song, name));
"""


@dataclass
class SongEntry:
    """One song ready to add: its leader's chunk embeddings and summaries, and its parts."""

    song_key: str
    dataset: str
    split: str
    tempo_bpm: float
    key_tonic: int
    key_mode: str
    n_frames: int
    leader: str
    vectors: np.ndarray  # float32 [n_chunks, EMBEDDING_DIM]
    summaries: np.ndarray  # float32 [n_chunks, SUMMARY_DIM]
    chunk_keys: np.ndarray  # int [n_chunks] tonic pitch class of each chunk
    parts: list[Part] = field(default_factory=list)
    source_path: str | None = None


@dataclass(frozen=True)
class SongInfo:
    """An indexed song as a query sees it."""

    id: int
    song_key: str
    dataset: str
    split: str
    tempo_bpm: float
    key_tonic: int
    key_mode: str
    n_frames: int
    first_chunk: int
    n_chunks: int
    leader: str
    source_path: str | None




def _new_hnsw(capacity: int) -> hnswlib.Index:
    index = hnswlib.Index(space="cosine", dim=spec.EMBEDDING_DIM)
    index.init_index(max_elements=max(capacity, 1), ef_construction=spec.HNSW_EF_CONSTRUCTION, M=spec.HNSW_M, random_seed=100)
    return index


class ChunkIndex:
    """An open index: song and chunk tables in memory, the HNSW graph loaded, SQLite for parts.

    `chunk_song[c]`, `chunk_position[c]` and `summaries[c]` describe chunk id c; `songs[s]` is
    song id s. Read-only unless opened by `create` or `open(..., writable=True)`.
    """

    def __init__(self, folder: Path, db: sqlite3.Connection, writable: bool) -> None:
        self.folder = folder
        self._db = db
        self.writable = writable
        self._where = folder / DB_NAME
        self._vectors: np.ndarray | None = None
        self._load_tables()

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path) -> ChunkIndex:
        """A new, empty index in `folder` (which the caller has claimed; any old one is replaced)."""
        folder = Path(folder)
        (folder / HNSW_DIR).mkdir(parents=True, exist_ok=True)
        for old in (folder / HNSW_DIR).glob("*.hnsw"):
            old.unlink()
        with atomic_path(folder / DB_NAME) as temporary:
            db = sqlite3.connect(temporary)
            db.executescript(_SCHEMA)
            meta = {
                "format": FORMAT, "feature_version": str(spec.FEATURE_VERSION),
                "embedding_spec": json.dumps(spec.embedding_spec(), sort_keys=True),
                "hnsw_file": "", "hnsw_bytes": "0", "hnsw_sha256": "", "hnsw_count": "0", "generation": "0",
            }
            db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            db.commit()
            db.close()
        return cls.open(folder, writable=True)

    @classmethod
    def open(cls, folder: Path, writable: bool = False) -> ChunkIndex:
        """Open and check the index in `folder`; TuttiError naming what is wrong and the remedy."""
        folder = Path(folder)
        path = folder / DB_NAME
        if not path.is_file():
            raise TuttiError(f"no chunk index in {folder} (no {DB_NAME}): run `launch.py build-index` to make one")
        try:
            uri = f"file:{path.resolve()}" + ("" if writable else "?mode=ro")
            db = sqlite3.connect(uri, uri=True)
            status = db.execute("PRAGMA quick_check").fetchone()[0]
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as err:
            raise TuttiError(f"{path} is not a readable chunk index ({err}): rebuild it with `launch.py build-index --force`") from None
        if status != "ok":
            raise TuttiError(f"{path} is damaged (SQLite: {status}): rebuild it with `launch.py build-index --force`")
        if meta.get("format") != FORMAT:
            raise TuttiError(f"{path} has format {meta.get('format')!r}, Tutti reads {FORMAT!r}: rebuild it with `launch.py build-index --force`")
        if meta.get("feature_version") != str(spec.FEATURE_VERSION):
            raise TuttiError(
                f"{path} was built with feature version {' '.join(str(meta.get('feature_version')).split())}, the engine computes "
                f"version {spec.FEATURE_VERSION}: rebuild it with `launch.py build-index --force`"
            )
        try:
            recorded = json.loads(meta.get("embedding_spec", "null"))
        except json.JSONDecodeError:
            recorded = None
        if recorded != spec.embedding_spec():
            differs = sorted(k for k in spec.embedding_spec() if not isinstance(recorded, dict) or recorded.get(k) != spec.embedding_spec()[k])
            raise TuttiError(
                f"{path} was built with another embedding spec (differs in {', '.join(differs)}): "
                "rebuild it with `launch.py build-index --force`"
            )
        index = cls(folder, db, writable)
        index._meta = meta
        index._load_hnsw()
        return index

    def _load_tables(self) -> None:
        try:
            rows = self._db.execute(
                "SELECT id, song_key, dataset, split, tempo_bpm, key_tonic, key_mode, n_frames, first_chunk, "
                "n_chunks, leader, source_path FROM songs ORDER BY id").fetchall()
            chunks = self._db.execute("SELECT id, song, position, key_tonic, summary FROM chunks ORDER BY id").fetchall()
        except sqlite3.Error as err:
            raise TuttiError(f"{self._where} is damaged ({err}): rebuild it with `launch.py build-index --force`") from None
        self.songs = [SongInfo(*row) for row in rows]
        self.song_by_key = {song.song_key: song for song in self.songs}
        n = len(chunks)
        if any(row[0] != i for i, row in enumerate(chunks)) or any(s.id != i for i, s in enumerate(self.songs)):
            raise TuttiError(f"{self._where} is damaged (chunk or song ids are not contiguous): rebuild it")
        self.chunk_song = np.array([row[1] for row in chunks], dtype=np.int64)
        self.chunk_position = np.array([row[2] for row in chunks], dtype=np.int64)
        self.chunk_key = np.array([row[3] for row in chunks], dtype=np.int64)
        blob = b"".join(row[4] for row in chunks)
        if len(blob) != n * SUMMARY_DIM * 2:
            raise TuttiError(f"{self._where} is damaged (chunk summaries have the wrong size): rebuild it")
        self.summaries = np.frombuffer(blob, dtype=np.float16).reshape(n, SUMMARY_DIM).astype(np.float32)
        self.song_n_chunks = np.array([s.n_chunks for s in self.songs], dtype=np.int64)
        self.song_first = np.array([s.first_chunk for s in self.songs], dtype=np.int64)
        self.song_tempo = np.array([s.tempo_bpm for s in self.songs], dtype=np.float64)

    def _load_hnsw(self) -> None:
        try:
            count, name, recorded_bytes = int(self._meta["hnsw_count"]), self._meta["hnsw_file"], int(self._meta["hnsw_bytes"])
        except (KeyError, ValueError) as err:
            raise TuttiError(f"{self._where} is damaged (its meta lacks or garbles {err}): rebuild it with `launch.py build-index --force`") from None
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise TuttiError(f"{self._where} is damaged (it names HNSW file {name!r} outside its folder): rebuild it")
        if count != len(self.chunk_song):
            raise TuttiError(f"{self._where} is damaged (HNSW holds {count} chunks, the tables {len(self.chunk_song)}): rebuild it")
        self.hnsw = _new_hnsw(1)
        if count == 0:
            return
        path = self.folder / name
        if not path.is_file():
            raise TuttiError(f"{path} is missing from the chunk index: rebuild it with `launch.py build-index --force`")
        size = path.stat().st_size
        if size != recorded_bytes:
            raise TuttiError(f"{path} is truncated or damaged ({size} bytes, {recorded_bytes} recorded): rebuild the index")
        if file_sha256(path) != self._meta.get("hnsw_sha256"):
            raise TuttiError(f"{path} is damaged (its sha256 differs from the one recorded): rebuild the index")
        self.hnsw = hnswlib.Index(space="cosine", dim=spec.EMBEDDING_DIM)
        try:
            self.hnsw.load_index(str(path), max_elements=count)
        except (RuntimeError, ValueError, MemoryError) as err:
            raise TuttiError(f"{path} is damaged (hnswlib: {' '.join(str(err).split())}): rebuild the index") from None
        self.hnsw.set_ef(spec.HNSW_EF_SEARCH)
        self.hnsw.set_num_threads(1)

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.chunk_song)

    def check_not_empty(self) -> None:
        if len(self) == 0:
            raise TuttiError(f"the chunk index in {self.folder} is empty: add songs with `launch.py build-index`")

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """float32 embeddings of chunk ids (as stored in the HNSW file; all of them are copied
        out once, on first use: 224 bytes a chunk)."""
        if self._vectors is None or len(self._vectors) != len(self):
            self._vectors = np.asarray(self.hnsw.get_items(np.arange(len(self))), dtype=np.float32).reshape(-1, spec.EMBEDDING_DIM)
        return self._vectors[np.asarray(ids, dtype=np.int64)]

    def next_chunk(self, ids: np.ndarray) -> np.ndarray:
        """The id of the chunk that follows each chunk without overlap, -1 past the song's end."""
        ids = np.asarray(ids, dtype=np.int64)
        song = self.chunk_song[ids]
        nxt = self.chunk_position[ids] + spec.NEXT_CHUNK_OFFSET
        return np.where(nxt < self.song_n_chunks[song], ids + spec.NEXT_CHUNK_OFFSET, -1)

    def parts(self, song_id: int) -> list[Part]:
        """What each stem of song `song_id` plays (decoded from its blobs)."""
        try:
            rows = self._db.execute(
                "SELECT name, role, program_num, is_drum, is_leader, kind, data FROM parts WHERE song = ? ORDER BY name",
                (int(song_id),)).fetchall()
        except sqlite3.Error as err:
            raise TuttiError(f"{self._where} is damaged ({err}): rebuild it with `launch.py build-index --force`") from None
        out = []
        for name, role, program, is_drum, is_leader, kind, data in rows:
            array = decode(kind, data, str(self._where))
            out.append(Part(name, role, int(program), bool(is_drum), bool(is_leader),
                            notes=array if kind == "notes" else None, curves=array if kind != "notes" else None))
        return out

    def close(self) -> None:
        self._db.close()

    # -- adding ----------------------------------------------------------------------------
    def add_songs(self, entries: list[SongEntry]) -> int:
        """Add songs not yet indexed (by song_key) without a rebuild; returns how many chunks were added."""
        if not self.writable:
            raise TuttiError(f"the chunk index in {self.folder} is open read-only")
        entries = [e for e in entries if e.song_key not in self.song_by_key and len(e.vectors)]
        if not entries:
            return 0
        first = len(self)
        vectors = np.concatenate([e.vectors for e in entries]).astype(np.float32)
        ids = np.arange(first, first + len(vectors), dtype=np.int64)
        generation = int(self._meta["generation"]) + 1
        name = f"{HNSW_DIR}/chunks.{generation}.hnsw"
        graph = self._grown_graph(first + len(vectors))
        graph.add_items(vectors, ids, num_threads=1)
        with atomic_path(self.folder / name) as temporary:
            graph.save_index(str(temporary))
        path = self.folder / name
        meta = {"hnsw_file": name, "hnsw_bytes": str(path.stat().st_size), "hnsw_sha256": file_sha256(path),
                "hnsw_count": str(first + len(vectors)), "generation": str(generation)}
        old_file = self._meta["hnsw_file"]
        db = self._db
        try:
            with db:  # one transaction: all of it or none
                chunk_id, song_id = first, len(self.songs)
                for entry in entries:
                    n = len(entry.vectors)
                    db.execute(
                        "INSERT INTO songs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (song_id, entry.song_key, entry.dataset, entry.split, float(entry.tempo_bpm), int(entry.key_tonic),
                         entry.key_mode, int(entry.n_frames), chunk_id, n, entry.leader, entry.source_path))
                    summaries = entry.summaries.astype(np.float16)
                    db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?)", [
                        (chunk_id + i, song_id, i, i * spec.HOP_S, int(entry.chunk_keys[i]), float(entry.tempo_bpm), summaries[i].tobytes())
                        for i in range(n)])
                    db.executemany("INSERT INTO parts VALUES (?,?,?,?,?,?,?,?)", [
                        (song_id, p.name, p.role, p.program_num, int(p.is_drum), int(p.is_leader), p.kind, encode(p))
                        for p in entry.parts])
                    chunk_id += n
                    song_id += 1
                db.executemany("UPDATE meta SET value = ? WHERE key = ?", [(v, k) for k, v in meta.items()])
        except sqlite3.Error as err:
            path.unlink(missing_ok=True)
            raise TuttiError(f"cannot add to {self._where} ({err}): check the disk, then run build-index again") from None
        if old_file and old_file != name:
            (self.folder / old_file).unlink(missing_ok=True)
        self._meta.update(meta)
        self._load_tables()
        self.hnsw = graph
        self.hnsw.set_ef(spec.HNSW_EF_SEARCH)
        self.hnsw.set_num_threads(1)
        return len(vectors)

    def _grown_graph(self, capacity: int) -> hnswlib.Index:
        """The current graph reloaded with room for `capacity` chunks (the open one stays untouched)."""
        if len(self) == 0:
            return _new_hnsw(capacity)
        graph = hnswlib.Index(space="cosine", dim=spec.EMBEDDING_DIM)
        graph.load_index(str(self.folder / self._meta["hnsw_file"]), max_elements=capacity)
        return graph
