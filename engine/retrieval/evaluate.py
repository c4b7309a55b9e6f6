"""The honest retrieval evaluation (DESIGN.md section 7), against the exhaustive baseline.

Setting: every song's chunks are in the index. For each held-out song (split val/test), the
leader stem is re-rendered from its MIDI with another soundfont (MuseScore General, a timbre
the corpus never used) and analysed as a player's input would be. Queries end every
QUERY_EVERY_S seconds at a time t on the chunk grid; the query window is [t - 8.5 s, t).
Every chunk of that song overlapping the window is excluded, both as a match and as a
proposal; the target is the next non-overlapping chunk, the one starting at t.

A proposal is a hit when its leader notes match the target's: pitch classes after the
proposal's transposition and onsets within ONSET_TOLERANCE_S, greedily paired, with at least
MATCH_SHARE of max(target notes, proposal notes) paired. Also by exact chunk id. Queries whose
target holds no leader note are skipped (there is no melody to continue).

Methods:
- tutti: `query.retrieve` (HNSW over the leader embedding, relevance + seam, dedup), top 10.
- baseline (the original design): an exhaustive scan over every chunk start; relevance =
  cosine of the L2-normalised 12-bin mean chroma of the query's last 8 s and of the candidate
  chunk; coherence = 0.5 (exp(-50 mean sq f0 difference in Hz over the first 100 frames) +
  exp(-30 mean sq loudness difference in dB)) against the query's own last 100 frames; score =
  0.8 relevance + 0.6 coherence, candidates under a coherence of 0.7 dropped, and if none
  survive 0.95 relevance + 0.05 coherence with no floor; top 10; no dedup.
- random: 10 chunks drawn uniformly (seeded).
Seams: for a sample of queries, the query's last 2 s of leader notes and the top-1 proposal's
notes (and, as the reference, the true next chunk's) are played by one Tutti voice at one
level and joined with extend's equal-power crossfade; the loudness jump (dB, 0.25 s either
side) and the spectral flux at the join are measured.

`launch.py eval retrieval --out REPORT.json` (or `python -m engine.retrieval.evaluate`): the
shipped index over ./corpus.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.errors import TuttiError
from engine.features.frames import CHROMA, F0, LOUDNESS
from engine.retrieval import spec
from engine.retrieval.embedding import voiced_mask
from engine.retrieval.plan import StemPlan, control_frames
from engine.retrieval.query import QuerySettings, retrieve
from engine.retrieval.store import ChunkIndex

EVAL_SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
EVAL_RATE_HZ = 16000
QUERY_WINDOW_S = 8.5
BASELINE_CHROMA_S = 8.0
QUERY_EVERY_S = 4.0
ONSET_TOLERANCE_S = 0.1
MATCH_SHARE = 0.5
TOP = 10
SEAM_SAMPLE = 120
SEAM_VOICE = "reference:bowed-strings"
REPORT_SIGNATURE = b'{\n  "index": '  # how every report this module writes begins


def leader_notes(index: ChunkIndex, song: int) -> np.ndarray:
    """float [n, 4] (onset_s, offset_s, pitch, velocity) of a song's leader stem."""
    lead = next(p for p in index.parts(song) if p.is_leader)
    if lead.notes is None:
        raise TuttiError(f"{index.songs[song].song_key} has no note labels: the evaluation needs a MIDI corpus")
    onset = lead.notes[:, 0] / 1000.0
    return np.column_stack([onset, onset + lead.notes[:, 1] / 1000.0, lead.notes[:, 2], lead.notes[:, 3]]).astype(float)


def chunk_notes(notes: np.ndarray, start_s: float) -> np.ndarray:
    """Notes with onsets in [start_s, start_s + CHUNK_S), onsets made relative to start_s."""
    inside = notes[(notes[:, 0] >= start_s) & (notes[:, 0] < start_s + spec.CHUNK_S)].copy()
    inside[:, :2] -= start_s
    return inside


def sounding_notes(notes: np.ndarray, start_s: float) -> np.ndarray:
    """Notes sounding in [start_s, start_s + CHUNK_S), cut at its edges, relative to start_s
    (what a continuation plays, as `plan.plan_path` cuts it)."""
    end = start_s + spec.CHUNK_S
    inside = notes[(notes[:, 0] < end) & (notes[:, 1] > start_s)].copy()
    inside[:, 0] = np.maximum(inside[:, 0], start_s)
    inside[:, 1] = np.minimum(inside[:, 1], end)
    inside[:, :2] -= start_s
    return inside


def notes_match(target: np.ndarray, proposal: np.ndarray, transpose: int) -> bool:
    """The hit rule: greedy pairs of equal pitch class and onsets within ONSET_TOLERANCE_S cover
    at least MATCH_SHARE of max(len(target), len(proposal))."""
    if len(target) == 0 or len(proposal) == 0:
        return False
    used = np.zeros(len(proposal), dtype=bool)
    classes = (proposal[:, 2].astype(int) + transpose) % 12
    paired = 0
    for onset, _, pitch, _ in target:
        free = np.flatnonzero(~used & (classes == int(pitch) % 12) & (np.abs(proposal[:, 0] - onset) <= ONSET_TOLERANCE_S))
        if len(free):
            used[free[np.argmin(np.abs(proposal[free, 0] - onset))]] = True
            paired += 1
    return paired >= MATCH_SHARE * max(len(target), len(proposal))


def rerender_leader(corpus: Path, song_key: str, leader: str) -> np.ndarray:
    """The leader stem's MIDI rendered with EVAL_SOUNDFONT, mono at EVAL_RATE_HZ."""
    import yaml

    from training.data.render import RenderSettings, render_midi

    if not EVAL_SOUNDFONT.is_file():
        raise TuttiError(f"{EVAL_SOUNDFONT} is missing: apt-get install musescore-general-soundfont-small")
    for meta in sorted(corpus.glob("*/metadata.yaml")):
        if (yaml.safe_load(meta.read_text()) or {}).get("song_id") == song_key:
            midi = meta.parent / "MIDI" / f"{leader}.mid"
            settings = RenderSettings(out_dir=meta.parent, sample_rate_hz=EVAL_RATE_HZ, soundfont=EVAL_SOUNDFONT)
            import shutil
            import tempfile

            with tempfile.TemporaryDirectory() as scratch:  # render_midi writes beside the MIDI
                copy = Path(scratch) / midi.name
                shutil.copy(midi, copy)
                return render_midi(copy, settings)
    raise TuttiError(f"{song_key} is not in the corpus at {corpus}: give the corpus the index was built from")


class Baseline:
    """The original design's exhaustive scan (see the module docstring), over leader frames."""

    def __init__(self, index: ChunkIndex, cache_dir: Path) -> None:
        from training.data.cache import load_features

        chroma, f0, loudness = [], [], []
        for song in index.songs:
            frames = np.asarray(load_features(cache_dir, song.song_key, song.leader), dtype=np.float64)
            for position in range(song.n_chunks):
                span = frames[position * spec.HOP_FRAMES: position * spec.HOP_FRAMES + spec.CHUNK_FRAMES]
                mean = span[:, CHROMA].mean(axis=0)
                chroma.append(mean / max(np.linalg.norm(mean), 1e-12))
                f0.append(np.where(span[:100, 1] >= 0.5, span[:100, F0], 0.0))
                loudness.append(span[:100, LOUDNESS])
        self.chroma, self.f0, self.loudness = np.array(chroma), np.array(f0), np.array(loudness)

    def scan(self, frames: np.ndarray, excluded: np.ndarray) -> np.ndarray:
        """The top chunk ids for query frames (the last 8 s used), `excluded` a bool mask."""
        recent = frames[-int(BASELINE_CHROMA_S * 250):]
        mean = recent[:, CHROMA].mean(axis=0)
        relevance = self.chroma @ (mean / max(np.linalg.norm(mean), 1e-12))
        last = frames[-100:]
        f0 = np.where(last[:, 1] >= 0.5, last[:, F0], 0.0)
        coherence = 0.5 * (np.exp(-50.0 * np.mean((self.f0 - f0) ** 2, axis=1))
                           + np.exp(-30.0 * np.mean((self.loudness - last[:, LOUDNESS]) ** 2, axis=1)))
        score = 0.8 * relevance + 0.6 * coherence
        alive = (coherence >= 0.7) & ~excluded
        if not alive.any():
            score, alive = 0.95 * relevance + 0.05 * coherence, ~excluded
        score = np.where(alive, score, -np.inf)
        top = np.argpartition(-score, TOP)[:TOP]
        return top[np.argsort(-score[top])]


def _join_seam(context: np.ndarray, continuation: np.ndarray, transpose: int, level_db: float, config) -> dict:
    """Context notes (0..2 s) then continuation notes (2..4 s) by one voice, crossfaded at 2 s."""
    from engine.rates import CONTROL_RATE_HZ, frame_samples
    from engine.retrieval.extend import CROSSFADE_S, equal_power_gains, measure_seam
    from engine.voices.factory import build_voice
    from engine.config import VoiceConfig

    rate = config.engine.sample_rate_hz
    hop = frame_samples(rate)
    n_frames = int(4.3 * CONTROL_RATE_HZ)
    cont = continuation.copy()
    cont[:, :2] += spec.CHUNK_S
    cont[:, 2] += transpose
    # control_frames' frame 0 is PREROLL_S before time 0; both sides share that timeline
    rendered = []
    for notes in (context, cont):
        stem = StemPlan("lead", "melody", 0, False, True, notes, None)
        frames = control_frames(stem, n_frames, level_db)
        voice = build_voice("seam", VoiceConfig(kind=SEAM_VOICE), config)
        out = np.zeros(n_frames * hop, dtype=np.float32)
        for i, frame in enumerate(frames):
            voice.step(frame)
            voice.render(out, i * hop, hop)
        rendered.append(out)
    from engine.retrieval.plan import PREROLL_S

    join_s = spec.CHUNK_S + PREROLL_S
    gains = equal_power_gains(len(rendered[0]), int(round(join_s * rate)), int(round(CROSSFADE_S * rate)))
    return measure_seam(rendered[0] * gains[0] + rendered[1] * gains[1], rate, join_s)


def evaluate(index_dir: Path, corpus: Path, splits: tuple[str, ...] = ("val", "test"), every_s: float = QUERY_EVERY_S,
             max_queries: int | None = None, seam_joins: int = SEAM_SAMPLE, settings: QuerySettings | None = None,
             stream=None) -> dict:
    """Run the evaluation; returns the report (see the module docstring). Progress goes to
    `stream` (sys.stderr as it is when called, by default)."""
    stream = sys.stderr if stream is None else stream
    from engine.config import load_config
    from engine.features.streaming import StreamingAnalyzer
    from engine.retrieval.extend import TEMPO_CONFIDENCE
    from engine.tempo_key import estimate_tempo

    config = load_config()
    index = ChunkIndex.open(index_dir)
    index.check_not_empty()
    songs = [s for s in index.songs if s.split in splits]
    if not songs:
        raise TuttiError(f"the index in {index_dir} has no songs in split {'/'.join(splits)}: pick other --splits")
    baseline = Baseline(index, corpus / "features")
    rng = np.random.default_rng(0)
    analyzer = StreamingAnalyzer(EVAL_RATE_HZ)
    methods = ("tutti", "baseline", "random")
    hits = {m: {"notes": [], "exact": []} for m in methods}
    ranks = {m: [] for m in methods}
    seams = {m: {"loudness_jump_db": [], "flux": []} for m in ("tutti", "baseline", "natural")}
    times = {"tutti": [], "baseline": []}
    queries = 0
    seam_every = None
    for song in songs:
        if max_queries is not None and queries >= max_queries:
            break
        frames = analyzer.analyze(rerender_leader(corpus, song.song_key, song.leader)).values
        notes = leader_notes(index, song.id)
        window_chunks = int(QUERY_WINDOW_S // spec.HOP_S)
        for t in np.arange(np.ceil(QUERY_WINDOW_S), song.n_chunks * spec.HOP_S, every_s):
            position = int(round(t / spec.HOP_S))
            if position >= song.n_chunks or max_queries is not None and queries >= max_queries:
                break
            target = chunk_notes(notes, t)
            window = frames[int((t - QUERY_WINDOW_S) * 250): int(t * 250)]
            if len(target) == 0 or len(window) < spec.CHUNK_FRAMES or voiced_mask(window[-spec.CHUNK_FRAMES:]).mean() < 0.05:
                continue
            lo = song.first_chunk + max(0, position - window_chunks - 2)  # chunks overlapping [t - 8.5, t)
            hi = song.first_chunk + position  # (start > t - 10.5 s and < t)

            def exclude(ids: np.ndarray, lo=lo, hi=hi) -> np.ndarray:
                return (ids > lo) & (ids < hi) if position - window_chunks - 2 >= 0 else (ids >= song.first_chunk) & (ids < hi)

            target_id = song.first_chunk + position
            started = time.perf_counter()
            tempo, confidence = estimate_tempo(window[:, 3])
            found = retrieve(index, window, replace(settings or QuerySettings(), top_k=TOP, exclude=exclude,
                                                    tempo_bpm=tempo if confidence >= TEMPO_CONFIDENCE else None))
            times["tutti"].append(time.perf_counter() - started)
            ours = [(p.first.chunk, p.first.transpose) for p in found]
            excluded = exclude(np.arange(len(index)))
            started = time.perf_counter()
            theirs = [(int(c), 0) for c in baseline.scan(window, excluded)]
            times["baseline"].append(time.perf_counter() - started)
            allowed = np.flatnonzero(~excluded)
            chance = [(int(c), 0) for c in rng.choice(allowed, TOP, replace=False)]
            for method, proposals in (("tutti", ours), ("baseline", theirs), ("random", chance)):
                note_hits = [notes_match(target, chunk_notes(leader_notes(index, int(index.chunk_song[c])),
                                                             index.chunk_position[c] * spec.HOP_S), t_) for c, t_ in proposals]
                hits[method]["notes"].append(note_hits)
                hits[method]["exact"].append([c == target_id for c, _ in proposals])
                ranks[method].append(next((i + 1 for i, h in enumerate(note_hits) if h), None))
            queries += 1
            seam_every = seam_every or 1
            if len(seams["natural"]["flux"]) < seam_joins and queries % max(1, seam_every) == 0 and ours and theirs:
                context = sounding_notes(notes, t - spec.CHUNK_S)
                level = float(np.mean(window[-spec.CHUNK_FRAMES:][voiced_mask(window[-spec.CHUNK_FRAMES:]), LOUDNESS]))
                for method, (c, t_) in (("tutti", ours[0]), ("baseline", theirs[0]), ("natural", (target_id, 0))):
                    cont = sounding_notes(leader_notes(index, int(index.chunk_song[c])), index.chunk_position[c] * spec.HOP_S)
                    measured = _join_seam(context, cont, t_, level, config)
                    for key, value in measured.items():
                        seams[method][key].append(value)
        stream.write(f"evaluate: {song.song_key} done, {queries} queries so far\n")
    report = {
        "index": str(Path(index_dir).resolve()), "chunks": len(index), "songs_indexed": len(index.songs),
        "eval_songs": [s.song_key for s in songs], "splits": list(splits), "queries": queries,
        "query_window_s": QUERY_WINDOW_S, "query_timbre": f"{EVAL_SOUNDFONT.name} (FluidSynth), the corpus used FluidR3_GM",
        "hit_rule": f"leader pitch classes (transposed) with onsets within {ONSET_TOLERANCE_S} s, >= {MATCH_SHARE:.0%} of notes paired",
        "methods": {},
    }
    for method in methods:
        notes_hits = np.array(hits[method]["notes"], dtype=bool)
        exact_hits = np.array(hits[method]["exact"], dtype=bool)
        entry = {}
        for k in (1, 5, 10):
            entry[f"recall@{k}"] = float(notes_hits[:, :k].any(axis=1).mean()) if queries else 0.0
            entry[f"exact_recall@{k}"] = float(exact_hits[:, :k].any(axis=1).mean()) if queries else 0.0
        entry["mrr@10"] = float(np.mean([1.0 / r if r else 0.0 for r in ranks[method]])) if queries else 0.0
        report["methods"][method] = entry
    report["methods"]["tutti"]["query_ms_p50"] = float(np.percentile(times["tutti"], 50) * 1000) if queries else 0.0
    report["methods"]["baseline"]["query_ms_p50"] = float(np.percentile(times["baseline"], 50) * 1000) if queries else 0.0
    report["seams"] = {
        method: {key: float(np.mean(values)) if values else None for key, values in terms.items()} | {"joins": len(terms["flux"])}
        for method, terms in seams.items()
    }
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.retrieval.evaluate ...`: the same options as `launch.py eval retrieval`."""
    from engine.retrieval.cli import add_eval_retrieval

    parser = argparse.ArgumentParser(prog="python -m engine.retrieval.evaluate")
    add_eval_retrieval(parser.add_subparsers(dest="target", required=True))
    args = parser.parse_args(["retrieval", *(sys.argv[1:] if argv is None else argv)])
    try:
        args.run(args)
    except TuttiError as err:
        print(f"tutti: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
