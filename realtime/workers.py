"""The worker thread that computes deadline-scheduled tasks live (engine/scheduling.py).

It waits for a slot's `requested_trigger` to change (a fixed frame index published by the
audio thread), computes from the frames up to that trigger, and stamps the result. It polls
the trigger every millisecond: the audio thread never signals, locks or allocates for it.
"""

from __future__ import annotations

import threading
import time

from engine.scheduling import FrameScheduler

POLL_S = 0.001


class TaskWorker:
    """Runs every slot of `scheduler` on one background thread."""

    def __init__(self, scheduler: FrameScheduler) -> None:
        scheduler.synchronous = False
        self._scheduler = scheduler
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tutti-tasks", daemon=True)
        self.errors: list[str] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        done = {id(slot): -1 for slot in self._scheduler.slots}
        while not self._stop.is_set():
            for slot in self._scheduler.slots:
                trigger = slot.requested_trigger
                if trigger > done[id(slot)]:
                    done[id(slot)] = trigger
                    try:
                        self._scheduler.run(slot, trigger)
                    except Exception as err:  # a failing task must not kill the others
                        self.errors.append(f"task {slot.task.name} failed at frame {trigger}: {err}")
            time.sleep(POLL_S)
