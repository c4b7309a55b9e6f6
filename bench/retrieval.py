#!/usr/bin/env python3
"""Retrieval speed: HNSW recall and latency at 10k/100k/1M chunks, one live query end to end.

`python bench/retrieval.py [--index index] [--sizes 10000 100000 1000000] [--queries 500]`

1. ANN: the shipped index's real embeddings, plus synthetic ones drawn like them (a real
   vector, its chroma rolled by a random transposition, Gaussian noise of 0.05, renormalised),
   in an hnswlib index with the spec's settings (M, ef_construction) built on one thread.
   Prints build time, file size, peak RSS, and for ef 64/128/256 recall@10 against exact
   search (numpy, 200 queries) and query p50/p99, with the exact scan's p50.
2. The original design's exhaustive scan (mean-chroma relevance + f0/loudness coherence over
   every chunk start) at the same sizes: p50 per query and the speed-up of the HNSW query.
3. End to end on the shipped index: one live query from 2 s of analysis frames (embedding,
   12 transpositions of ANN, seam rescoring, dedup; and with a 2-step beam): p50/p99.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hnswlib  # noqa: E402
import numpy as np  # noqa: E402

from engine.retrieval import spec  # noqa: E402
from engine.retrieval.embedding import rotate_chroma  # noqa: E402
from engine.retrieval.query import QuerySettings, retrieve  # noqa: E402
from engine.retrieval.store import ChunkIndex  # noqa: E402

EF_VALUES = (64, 128, 256)


def _percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    return float(np.percentile(seconds, 50) * 1000), float(np.percentile(seconds, 99) * 1000)


def drawn_like(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n unit vectors: real ones (all of them first), then rolled and noised copies."""
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    take = min(n, len(real))
    out[:take] = real[:take]
    for start in range(take, n, 100_000):
        stop = min(n, start + 100_000)
        picks = real[rng.integers(0, len(real), stop - start)]
        shifts = rng.integers(-6, 6, stop - start)
        rolled = np.stack([rotate_chroma(v, int(s)) for v, s in zip(picks, shifts)]) if stop - start < 1000 else \
            np.concatenate([rotate_chroma(picks[shifts == s], int(s)) for s in range(-6, 6)])
        noisy = rolled + rng.normal(0, 0.05, rolled.shape).astype(np.float32)
        out[start:stop] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return out


def ann_row(vectors: np.ndarray, queries: np.ndarray, m: int = spec.HNSW_M) -> dict:
    n = len(vectors)
    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.init_index(max_elements=n, ef_construction=spec.HNSW_EF_CONSTRUCTION, M=m, random_seed=100)
    started = time.perf_counter()
    index.add_items(vectors, num_threads=1)
    build_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "bench.hnsw")
        index.save_index(path)
        size_mb = os.path.getsize(path) / 1e6
    index.set_num_threads(1)
    exact_s, truths = [], []
    for q in queries[:200]:
        started = time.perf_counter()
        sims = vectors @ q
        truths.append(np.argpartition(-sims, 10)[:10])
        exact_s.append(time.perf_counter() - started)
    row = {"n": n, "build_s": build_s, "size_mb": size_mb, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "exact_p50_ms": _percentiles_ms(exact_s)[0], "ef": {}}
    for ef in EF_VALUES:
        index.set_ef(ef)
        index.knn_query(queries[:50], k=10, num_threads=1)  # warm the caches
        ann_s, recall = [], []
        for i, q in enumerate(queries):
            started = time.perf_counter()
            labels, _ = index.knn_query(q[None], k=10, num_threads=1)
            ann_s.append(time.perf_counter() - started)
            if i < len(truths):
                recall.append(len(set(truths[i]) & set(labels[0])) / 10)
        p50, p99 = _percentiles_ms(ann_s)
        row["ef"][ef] = {"recall@10": float(np.mean(recall)), "p50_ms": p50, "p99_ms": p99}
    return row


def baseline_scan_ms(n: int, rng: np.random.Generator) -> float:
    """p50 of the original design's exhaustive scan over n chunk starts (float32 arrays)."""
    chroma = rng.random((n, 12), dtype=np.float32)
    f0 = rng.random((n, 100), dtype=np.float32) * 400
    loud = -rng.random((n, 100), dtype=np.float32) * 60
    times = []
    for _ in range(5 if n >= 1_000_000 else 20):
        q_chroma, q_f0, q_loud = rng.random(12, dtype=np.float32), rng.random(100, dtype=np.float32) * 400, -rng.random(100, dtype=np.float32) * 60
        started = time.perf_counter()
        relevance = chroma @ q_chroma
        coherence = 0.5 * (np.exp(-50 * np.mean((f0 - q_f0) ** 2, axis=1)) + np.exp(-30 * np.mean((loud - q_loud) ** 2, axis=1)))
        score = 0.8 * relevance + 0.6 * coherence
        np.argpartition(-score, 10)[:10]
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def end_to_end(index: ChunkIndex, n_queries: int, rng: np.random.Generator) -> dict:
    """Live queries from 2 s windows of real leader-like frames: the index's own songs' chunks
    are not stored as frames, so the windows are cut from the feature cache when it is there,
    else synthesised (a voiced tone with chroma); the cost does not depend on which."""
    frames = np.zeros((spec.CHUNK_FRAMES, 16))
    frames[:, 0], frames[:, 1], frames[:, 2] = 220.0, 1.0, -20.0
    windows = []
    for _ in range(n_queries):
        w = frames.copy()
        w[:, 4:16] = rng.dirichlet(np.ones(12) * 0.3)
        w[:, 3] = rng.random(spec.CHUNK_FRAMES) ** 8
        w[:, 2] = -20 - 10 * rng.random(spec.CHUNK_FRAMES)
        windows.append(w)
    out = {}
    for steps in (1, 2):
        times = []
        for w in windows:
            started = time.perf_counter()
            retrieve(index, w, QuerySettings(top_k=5, steps=steps))
            times.append(time.perf_counter() - started)
        out[f"steps{steps}_p50_ms"], out[f"steps{steps}_p99_ms"] = _percentiles_ms(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--index", type=Path, default=Path(__file__).resolve().parents[1] / "index")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--m", type=int, default=spec.HNSW_M, help="HNSW M for the synthetic indexes (the shipped index uses the spec's)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    index = ChunkIndex.open(args.index)
    real = index.vectors(np.arange(len(index)))
    print(f"shipped index: {len(index)} chunks, {len(index.songs)} songs, dim {spec.EMBEDDING_DIM}, "
          f"M={spec.HNSW_M}, ef_construction={spec.HNSW_EF_CONSTRUCTION}, ef={spec.HNSW_EF_SEARCH}; synthetic indexes M={args.m}")
    print(f"{'chunks':>9} {'build s':>8} {'file MB':>8} {'RSS MB':>7} {'ef':>4} {'recall@10':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'exact ms':>8} {'orig scan ms':>12} {'speed-up':>8}")
    for n in args.sizes:
        vectors = drawn_like(real, n, rng)
        picks = vectors[rng.integers(0, n, args.queries)] + rng.normal(0, 0.03, (args.queries, spec.EMBEDDING_DIM)).astype(np.float32)
        queries = picks / np.linalg.norm(picks, axis=1, keepdims=True)
        row = ann_row(vectors, queries, args.m)
        scan = baseline_scan_ms(n, rng)
        for ef, cell in row["ef"].items():
            print(f"{n:9d} {row['build_s']:8.1f} {row['size_mb']:8.1f} {row['rss_mb']:7.0f} {ef:4d} {cell['recall@10']:9.3f} "
                  f"{cell['p50_ms']:7.3f} {cell['p99_ms']:7.3f} {row['exact_p50_ms']:8.2f} {scan:12.2f} "
                  f"{scan / cell['p50_ms']:7.0f}x", flush=True)
        del vectors
    e2e = end_to_end(index, min(args.queries, 300), rng)
    print(f"end to end on the shipped index (embed + 12 transpositions + seams + dedup): 1 step p50 "
          f"{e2e['steps1_p50_ms']:.2f} ms, p99 {e2e['steps1_p99_ms']:.2f} ms; 2-step beam p50 "
          f"{e2e['steps2_p50_ms']:.2f} ms, p99 {e2e['steps2_p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
