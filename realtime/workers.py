"""The workers that compute deadline-scheduled tasks live (engine/scheduling.py), one thread per
task in the control process, so a slow task cannot make another miss.

Each watches its task's requested trigger (a fixed frame index the audio thread publishes in
shared memory), computes from the frames up to that trigger and writes the result into the
control bus, where the audio thread brings it into force at trigger + lookahead. A worker
polls every `POLL_S` (200 times a second at most): the audio thread never signals, locks or
allocates for it, and the tasks' lookaheads (tens to hundreds of ms) dwarf the poll.
"""

from __future__ import annotations

import threading

from engine.scheduling import FAILURES, REQUESTED_TRIGGER, FrameScheduler

POLL_S = 0.005
WARM_UP_TIMEOUT_S = 10.0


class TaskWorkers:
    """One background thread per task of `scheduler` (which must be asynchronous)."""

    def __init__(self, scheduler: FrameScheduler) -> None:
        scheduler.synchronous = False
        self._scheduler = scheduler
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(index,), name=f"tutti-task-{task.name}", daemon=True)
            for index, task in enumerate(scheduler.tasks)
        ]
        self.errors: list[str] = []
        self._warm = [threading.Event() for _ in self._threads]

    def start(self) -> None:
        """Start every worker and return once each has warmed its task up (a model task's first
        call would otherwise miss the first deadlines of the take)."""
        for thread in self._threads:
            thread.start()
        for warm in self._warm:
            warm.wait(timeout=WARM_UP_TIMEOUT_S)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout=5)

    def _run(self, index: int) -> None:
        scheduler = self._scheduler
        bus = scheduler.bus
        task = scheduler.tasks[index]
        done = -1
        warm_up = getattr(task, "warm_up", None)
        if warm_up is not None:  # a model task opens its session in the thread that runs it, before the take
            try:
                warm_up()
            except Exception as err:  # noqa: BLE001 (reported like a failed call)
                self.errors.append(f"task {task.name} could not warm up: {err}")
        self._warm[index].set()
        while not self._stop.wait(POLL_S):
            trigger = int(bus.state[index, REQUESTED_TRIGGER])
            if trigger <= done:
                continue
            done = trigger
            try:
                scheduler.run(index, trigger)
            except Exception as err:  # noqa: BLE001 (a failing task must not kill the others)
                bus.worker[index, FAILURES] += 1
                if len(self.errors) < 100:
                    self.errors.append(f"task {task.name} failed at frame {trigger}: {err}")
