"""A worker process for fuzzed parses that might hang in C (libsndfile) or pure Python (music21).

`Sandbox.call(name, *args)` runs `TARGETS[name](*args)` in one long-lived spawned process and
returns ("ok", summary) or ("error", TuttiError message), or ("raised", "Type: message") for
any other exception; a call past `timeout_s` kills the worker and is reported as ("hang", s),
one that kills it (a crash in C) as ("crashed", name). The worker is then restarted, so one bad
input never stops the rest.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import multiprocessing
from pathlib import Path

import numpy as np


def _read_mono(path: str, rate_hz: int):
    from engine.audio_io import read_mono

    audio = read_mono(Path(path), rate_hz)
    if audio.dtype != np.float32 or audio.ndim != 1 or not np.all(np.isfinite(audio)):
        raise AssertionError(f"read_mono returned {audio.dtype} {audio.shape}, finite {np.all(np.isfinite(audio))}")
    return int(audio.shape[0])


def _check_audio(path: str):
    from training.data.cache import check_audio
    from training.data.items import SongItem, Stem

    stem = Stem("S00", "melody", "", -1, False, "composed", Path(path))
    return check_audio(SongItem("fuzz", "fuzz/1", "train", (stem,)))


def _melody_notes(path: str, number: int | None):
    from training.data.items import NOTE_DTYPE
    from training.data.scores import melody_notes

    notes = melody_notes(Path(path), number)
    if notes.dtype != NOTE_DTYPE or not np.all(np.isfinite(notes["onset_s"])):
        raise AssertionError(f"melody_notes returned {notes.dtype}")
    return int(len(notes))


def _essen(root: str):
    from training.data.loaders import load_essen

    items, skips = load_essen(Path(root))
    return len(items), len(skips)


def _open_index(folder: str):
    from engine.retrieval.store import ChunkIndex

    index = ChunkIndex.open(Path(folder))
    try:
        return len(index)
    finally:
        index.close()


TARGETS = {"read_mono": _read_mono, "check_audio": _check_audio, "melody_notes": _melody_notes, "essen": _essen,
           "open_index": _open_index}


def run_target(name: str, *args):
    """In the worker: the target's outcome as a picklable (kind, detail) pair."""
    from engine.errors import TuttiError

    try:
        return "ok", TARGETS[name](*args)
    except TuttiError as err:
        return "error", str(err)
    except Exception as err:  # the finding: anything else escaped the reader
        return "raised", f"{type(err).__name__}: {err}"


class Sandbox:
    """One spawned worker process, restarted after a call that hangs."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._pool = self._start()

    @staticmethod
    def _start() -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def call(self, name: str, *args):
        future = self._pool.submit(run_target, name, *args)
        try:
            return future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            self._restart()
            return "hang", self.timeout_s
        except concurrent.futures.process.BrokenProcessPool:  # the parse killed its process (a crash in C)
            self._restart()
            return "crashed", name

    def _restart(self) -> None:
        for process in list(self._pool._processes.values()):
            process.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
