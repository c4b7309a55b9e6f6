"""Where preparation tasks run: a local process pool (default), or a Dask or Ray cluster.

Why Dask distributed is the engine this project pins (requirements-train.txt): it installs in
about 5 s, where Ray takes 23 s and 376 MB; a 2-worker LocalCluster starts and runs 100 tasks in
1.1 s against Ray's 3.8 s (DESIGN.md section 11), which keeps the cluster test inside the suite's
budget; and `Client(address)` joins an existing scheduler with no change to the tasks. Ray is
accepted too (`--executor ray`) when the user has installed it and runs a Ray cluster already.

Every executor offers `submit`, `wait_any` and `result`; `run_jobs` keeps a bounded number of
tasks in flight, so a caller can stop submitting (low disk, enough hours) and still collect
every task it started. Tasks are plain top-level functions of one picklable argument.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from engine.errors import TuttiError

EXECUTORS = ("local", "dask", "ray")


def worker_identity() -> dict[str, Any]:
    """Which process ran a task: its pid, and the Dask worker's address when inside one."""
    engine_worker = None
    try:
        from distributed import get_worker

        engine_worker = get_worker().address
    except (ImportError, ValueError):  # not installed, or not inside a Dask worker
        pass
    return {"pid": os.getpid(), "engine_worker": engine_worker}


class Executor(Protocol):
    name: str
    workers: int

    def submit(self, fn: Callable[[Any], Any], job: Any) -> Any: ...
    def wait_any(self, pending: set) -> tuple[set, set]: ...
    def result(self, future: Any) -> Any: ...
    def close(self) -> None: ...


class LocalPool:
    """A process pool on this machine (spawned workers: no numba or thread state is forked)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[[Any], Any], job: Any) -> concurrent.futures.Future:
        return self._pool.submit(fn, job)

    def wait_any(self, pending: set) -> tuple[set, set]:
        done, rest = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        return set(done), set(rest)

    def result(self, future: concurrent.futures.Future) -> Any:
        return future.result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class DaskCluster:
    """A Dask cluster: the scheduler at `address`, or a LocalCluster of `workers` processes."""

    name = "dask"

    def __init__(self, workers: int, address: str | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise TuttiError("--executor dask needs Dask: pip install -r requirements-train.txt") from None
        self._cluster = None
        if address is None:
            self._cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR,
            )
        try:
            self._client = Client(address or self._cluster, timeout="20s")
        except OSError as err:
            raise TuttiError(f"cannot reach the Dask scheduler at {address} ({err}): start it or fix --scheduler") from None
        self.workers = max(1, len(self._client.scheduler_info()["workers"]))

    def submit(self, fn: Callable[[Any], Any], job: Any) -> Any:
        return self._client.submit(fn, job, pure=False)

    def wait_any(self, pending: set) -> tuple[set, set]:
        from distributed import wait

        done, rest = wait(list(pending), return_when="FIRST_COMPLETED")
        return set(done), set(rest)

    def result(self, future: Any) -> Any:
        return future.result()

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


class RayCluster:
    """A Ray cluster: the one at `address`, or a local `ray.init` with `workers` CPUs."""

    name = "ray"

    def __init__(self, workers: int, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise TuttiError("--executor ray needs Ray: pip install 'ray[default]', or use --executor dask") from None
        self._ray = ray
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False, log_to_driver=False)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", workers)))
        self._remote: dict[Callable, Any] = {}

    def submit(self, fn: Callable[[Any], Any], job: Any) -> Any:
        remote = self._remote.setdefault(fn, self._ray.remote(num_cpus=1)(fn))
        return remote.remote(job)

    def wait_any(self, pending: set) -> tuple[set, set]:
        done, rest = self._ray.wait(list(pending), num_returns=1)
        return set(done), set(rest)

    def result(self, future: Any) -> Any:
        return self._ray.get(future)

    def close(self) -> None:
        self._ray.shutdown()


def open_executor(kind: str, workers: int, address: str | None = None) -> Executor:
    """The executor named `kind` (one of EXECUTORS) with `workers` processes."""
    if kind == "local":
        if address is not None:
            raise TuttiError("--scheduler needs --executor dask or ray: the local pool has no scheduler")
        return LocalPool(workers)
    if kind == "dask":
        return DaskCluster(workers, address)
    if kind == "ray":
        return RayCluster(workers, address)
    raise TuttiError(f"unknown executor {kind!r}: choose one of {', '.join(EXECUTORS)}")


def run_jobs(
    executor: Executor, fn: Callable[[Any], Any], jobs: Iterable[Any], should_stop: Callable[[], bool],
) -> Iterator[Any]:
    """Run fn(job) for each job, yielding results as they finish, at most 2 per worker in flight.

    `should_stop` is asked before each submission; once true, no job is submitted, and the
    results of those already running are still yielded.
    """
    pending: set = set()
    limit = 2 * executor.workers
    for job in jobs:
        while len(pending) >= limit:
            done, pending = executor.wait_any(pending)
            yield from (executor.result(future) for future in done)
        if should_stop():
            break
        pending.add(executor.submit(fn, job))
    while pending:
        done, pending = executor.wait_any(pending)
        yield from (executor.result(future) for future in done)
