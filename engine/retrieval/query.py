"""Recent leader frames -> Top-K continuation paths through the chunk index.

`retrieve(index, frames, settings)` is a pure function of the player's recent analysis frames
and the index (a live worker calls it from its own thread or process; hnswlib releases the GIL):
1. the last CHUNK_FRAMES frames are embedded like every indexed chunk; the query is tried at
   every transposition (its chroma rolled), one batched ANN call;
2. each chunk found *resembles* the context; the chunk that follows it without overlap is the
   continuation candidate;
3. relevance looks further back where the frames allow: the player's earlier chunks (2 s each,
   up to CONTEXT_CHUNKS in all) against the matched chunk's predecessors in its song, weighted
   CONTEXT_DECAY ** k for the k-th chunk back (the mean of the available ones), so a phrase
   that only ends alike ranks below one that agrees all along;
4. candidates are rescored: score = RELEVANCE_WEIGHT * relevance
   + SEAM_WEIGHT * seam(player's audio -> continuation), plus KEY_BONUS when the transposed
   continuation sits in the player's key, and up to TEMPO_BONUS for a song whose tempo is close
   to the player's (a Gaussian in octaves, a tempo twice or half as fast counting as the same),
   where the caller knows them;
5. deduplicated: at most one candidate per song region (continuations of one song closer than a
   chunk length are one region; the best wins);
6. for more than one step, a beam search extends each path by the next chunk of its own song
   (a natural succession) or by retrieval from the path's last chunk (a jump), scoring each
   step the same way; after each step the best path from each first-step region is kept
   (beam_width of them), and paths are ranked by their mean step score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.errors import TuttiError
from engine.retrieval import spec
from engine.retrieval.embedding import VOICED_SHARE, chunk_summary, embed_chunk, rotate_chroma, voiced_mask
from engine.retrieval.seam import seam_terms
from engine.retrieval.store import ChunkIndex

RELEVANCE_WEIGHT = 0.85
SEAM_WEIGHT = 0.15
KEY_BONUS = 0.05
TEMPO_BONUS = 0.05
TEMPO_WIDTH_OCTAVES = 0.15
ALL_TRANSPOSITIONS = tuple(range(-6, 6))
MIN_VOICED_SHARE = 0.05
CONTEXT_CHUNKS = 3
CONTEXT_DECAY = 0.6


@dataclass(frozen=True)
class QuerySettings:
    """How many paths and steps, how wide the search; `key_tonic` is the player's key if known.

    `exclude(ids) -> bool mask` drops chunks, both as matches and as proposed continuations
    (the honest evaluation removes every chunk that overlaps the query window this way).
    """

    top_k: int = 5
    steps: int = 1
    beam_width: int = 8
    candidates: int = 24
    context_chunks: int = CONTEXT_CHUNKS
    transpositions: tuple[int, ...] = ALL_TRANSPOSITIONS
    key_tonic: int | None = None
    tempo_bpm: float | None = None
    exclude: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class Step:
    """One continuation chunk: `chunk` id in `song` starting at `start_s` of that song, played
    `transpose` semitones up; `matched` is the chunk it continues (-1 for a natural succession)."""

    chunk: int
    song: int
    start_s: float
    transpose: int
    matched: int
    relevance: float
    seam: float
    score: float


@dataclass(frozen=True)
class Continuation:
    """A path of steps (each CHUNK_S long) and its score (the mean of its steps' scores)."""

    steps: tuple[Step, ...]
    score: float

    @property
    def first(self) -> Step:
        return self.steps[0]


def check_context(frames: np.ndarray) -> np.ndarray:
    """The last CHUNK_FRAMES frames, or TuttiError for too short a context or silence."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[0] < spec.CHUNK_FRAMES:
        seconds = frames.shape[0] / 250.0 if frames.ndim == 2 else 0.0
        raise TuttiError(f"the context holds {seconds:.2f} s of frames, a query needs {spec.CHUNK_S:.0f} s: play (or give) a longer clip")
    context = frames[-spec.CHUNK_FRAMES:]
    if voiced_mask(context).mean() < MIN_VOICED_SHARE:
        raise TuttiError(f"the last {spec.CHUNK_S:.0f} s hold no pitched sound (silence or noise): give a clip that ends with playing")
    return context


def _context_relevance(index: ChunkIndex, matched: np.ndarray, relevance: np.ndarray, transpose: np.ndarray,
                       earlier: np.ndarray) -> np.ndarray:
    """Relevance over the longer context: `earlier[k-1]` is the player's chunk k back (an
    embedding), compared with the matched chunk's k-th predecessor where its song has one."""
    total = relevance.copy()
    weight = np.ones_like(relevance)
    for k, vector in enumerate(earlier, start=1):
        back = matched - k * spec.NEXT_CHUNK_OFFSET
        present = (back >= 0) & (index.chunk_song[np.maximum(back, 0)] == index.chunk_song[matched])
        if not present.any():
            break
        stored = index.vectors(back[present])
        rotations = np.stack([rotate_chroma(vector, -t) for t in range(12)])  # row t: shifted by -t
        shifted = rotations[transpose[present] % 12]
        total[present] += CONTEXT_DECAY ** k * np.sum(stored * shifted, axis=1)
        weight[present] += CONTEXT_DECAY ** k
    return total / weight


def _candidates(index: ChunkIndex, query: np.ndarray, before: np.ndarray, shifts: tuple[int, ...],
                base_transpose: int, settings: QuerySettings, song_keys: np.ndarray,
                earlier: np.ndarray = np.zeros((0, spec.EMBEDDING_DIM), dtype=np.float32)) -> list[Step]:
    """Continuations of the chunks resembling `query` (an embedding), at each chroma shift;
    `earlier` holds the player's preceding chunk embeddings, most recent first."""
    k = min(settings.candidates, len(index))
    vectors = np.stack([rotate_chroma(query, -shift) for shift in shifts])
    labels, distances = index.hnsw.knn_query(vectors, k=k, num_threads=1)
    matched = labels.reshape(-1).astype(np.int64)
    relevance = 1.0 - distances.reshape(-1).astype(np.float64)
    transpose = np.repeat(np.asarray(shifts, dtype=np.int64), k) + base_transpose
    keep = np.ones(len(matched), dtype=bool)
    if settings.exclude is not None:
        keep &= ~settings.exclude(matched)
    nxt = index.next_chunk(matched)
    keep &= nxt >= 0
    if settings.exclude is not None:
        keep &= ~settings.exclude(np.maximum(nxt, 0))
    keep &= index.summaries[np.maximum(nxt, 0), VOICED_SHARE] > 0
    matched, relevance, transpose, nxt = matched[keep], relevance[keep], transpose[keep], nxt[keep]
    if len(nxt) == 0:
        return []
    if len(earlier):
        relevance = _context_relevance(index, matched, relevance, transpose, earlier)
    transpose = (transpose + 6) % 12 - 6
    seam = seam_terms(before, index.summaries[nxt], transpose)["score"]
    score = RELEVANCE_WEIGHT * relevance + SEAM_WEIGHT * seam
    if settings.key_tonic is not None:
        score += KEY_BONUS * ((index.chunk_key[nxt] + transpose) % 12 == settings.key_tonic)
    songs = index.chunk_song[nxt]
    if settings.tempo_bpm:
        octaves = np.log2(np.maximum(index.song_tempo[songs], 1.0) / settings.tempo_bpm)
        octaves -= np.round(octaves)
        score += TEMPO_BONUS * np.exp(-0.5 * (octaves / TEMPO_WIDTH_OCTAVES) ** 2)
    starts = index.chunk_position[nxt] * spec.HOP_S
    return [
        Step(int(c), int(s), float(st), int(t), int(m), float(r), float(se), float(sc))
        for c, s, st, t, m, r, se, sc in zip(nxt, songs, starts, transpose, matched, relevance, seam, score)
    ]


def _same_region(a: Step, b: Step) -> bool:
    return a.song == b.song and abs(a.start_s - b.start_s) < spec.CHUNK_S


def dedup(steps: list[Step], limit: int) -> list[Step]:
    """The best step of each song region (same song, starts closer than a chunk), best first."""
    kept: list[Step] = []
    for step in sorted(steps, key=lambda s: -s.score):
        if not any(_same_region(step, other) for other in kept):
            kept.append(step)
            if len(kept) == limit:
                break
    return kept


def _natural_step(index: ChunkIndex, last: Step) -> Step | None:
    nxt = int(index.next_chunk(np.array([last.chunk]))[0])
    if nxt < 0:
        return None
    seam = float(seam_terms(index.summaries[last.chunk], index.summaries[nxt][None], np.array([0]))["score"][0])
    score = RELEVANCE_WEIGHT * 1.0 + SEAM_WEIGHT * seam
    return Step(nxt, int(index.chunk_song[nxt]), float(index.chunk_position[nxt] * spec.HOP_S), last.transpose, -1, 1.0, seam, score)


def retrieve(index: ChunkIndex, frames: np.ndarray, settings: QuerySettings = QuerySettings()) -> list[Continuation]:
    """Top-K continuation paths for the player's recent leader frames ([n >= 500, 16]; the last
    6 s are used when given, the last 2 s at least)."""
    index.check_not_empty()
    context = check_context(frames)
    query = embed_chunk(context)
    before = chunk_summary(context)
    song_keys = np.array([s.key_tonic for s in index.songs])
    earlier = np.array([
        embed_chunk(frames[len(frames) - (k + 1) * spec.CHUNK_FRAMES: len(frames) - k * spec.CHUNK_FRAMES])
        for k in range(1, settings.context_chunks) if len(frames) >= (k + 1) * spec.CHUNK_FRAMES
    ], dtype=np.float32).reshape(-1, spec.EMBEDDING_DIM)
    first = dedup(_candidates(index, query, before, settings.transpositions, 0, settings, song_keys, earlier),
                  max(settings.beam_width, settings.top_k))
    paths = [Continuation((step,), step.score) for step in first]
    for _ in range(settings.steps - 1):
        grown: list[Continuation] = []
        for path in paths:
            last = path.steps[-1]
            options = []
            natural = _natural_step(index, last)
            if natural is not None:
                options.append(natural)
            jumps = _candidates(index, index.vectors([last.chunk])[0], index.summaries[last.chunk], (0,),
                                last.transpose, QuerySettings(candidates=settings.candidates, exclude=settings.exclude), song_keys)
            options += [j for j in jumps if j.chunk != (natural.chunk if natural else -1)]
            for step in dedup(options, settings.beam_width):
                steps = path.steps + (step,)
                grown.append(Continuation(steps, float(np.mean([s.score for s in steps]))))
        if not grown:
            break
        grown.sort(key=lambda p: -p.score)
        paths = []
        for path in grown:  # the best path from each first region survives, so Top-K stay distinct
            if not any(_same_region(path.first, p.first) for p in paths):
                paths.append(path)
            if len(paths) == max(settings.beam_width, settings.top_k):
                break
    paths.sort(key=lambda p: -p.score)
    result: list[Continuation] = []
    for path in paths:
        if not any(_same_region(path.first, p.first) for p in result):
            result.append(path)
            if len(result) == settings.top_k:
                break
    return result
