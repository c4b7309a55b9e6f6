"""Preparation on a real local Dask cluster matches the local process pool, task for task."""

from __future__ import annotations

import io
import os
from pathlib import Path

import distributed  # noqa: F401  (pinned in requirements-train.txt: a missing engine fails, never skips)
import numpy as np

from tests import fixtures_data as fx
from training.data.cache import FeatureSettings, song_folder
from training.data.executors import LocalPool, run_jobs
from training.data.prepare import RunOptions, prepare_features

COMPARED = ("status", "content_hash", "duration_s", "sample_rate_hz", "stems", "split", "feature_version")


def test_dask_cluster_runs_the_tasks_in_its_workers_and_matches_the_local_pool(tmp_path: Path) -> None:
    root = fx.make_babyslakh(tmp_path / "baby", n_tracks=3)
    local = prepare_features("babyslakh", root, FeatureSettings(tmp_path / "local"), RunOptions(workers=2, min_free_gb=0.0), io.StringIO())
    dask = prepare_features("babyslakh", root, FeatureSettings(tmp_path / "dask"), RunOptions("dask", workers=2, min_free_gb=0.0), io.StringIO())
    assert dask.ran == local.ran == 3 and dask.workers == 2
    assert all(isinstance(w, str) and w.startswith(("tcp://", "inproc://")) for w in dask.worker_ids), dask.worker_ids
    assert all(isinstance(w, int) and w != os.getpid() for w in local.worker_ids)
    by_song = {r["song_id"]: r for r in local.records}
    for record in dask.records:
        assert {k: record[k] for k in COMPARED} == {k: by_song[record["song_id"]][k] for k in COMPARED}
        for name in ("S00", "S01", "S02", "mix"):
            a = np.load(song_folder(tmp_path / "local", record["song_id"]) / f"{name}.npy")
            b = np.load(song_folder(tmp_path / "dask", record["song_id"]) / f"{name}.npy")
            np.testing.assert_array_equal(a, b)


def test_run_jobs_stops_submitting_but_collects_what_is_in_flight() -> None:
    asked: list[int] = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) > 2  # allow two submissions

    pool = LocalPool(1)
    try:
        results = sorted(run_jobs(pool, abs, iter([-1, -2, -3, -4, -5]), should_stop))
    finally:
        pool.close()
    assert results == [1, 2] and len(asked) == 3
