"""The control process's handle on the engine process: spawn it, wait for it, steer it, notice
when it dies.

The arena is allocated here, before the engine starts; the engine attaches to it by name. The
control process reads telemetry, faults, analysis frames and the control bus from it, writes
mixer parameters into it and sends commands through its ring. The engine process's CPU load is
read from /proc, so the engine never spends a cycle on it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable

import numpy as np

from engine.config import TuttiConfig
from engine.errors import TuttiError
from engine.parameters import LiveParameters
from engine.processor import build_tasks, configured_kinds
from engine.ring import SampleRing
from engine.scheduling import (
    APPLIED,
    FAILURES,
    MISSES,
    STALE_READS,
    ControlBus,
    FrameHistory,
    FrameScheduler,
    bus_layout,
)
from realtime.commands import PANIC, SWAP, CommandSender
from realtime.devices import DuplexDevice
from realtime.engine_layout import ABANDON_STREAM, FILE_POSITION, RUNNING, STATE, STOP, STOP_STREAM, engine_layout
from realtime.engine_process import EngineReady, EngineSpec, engine_main
from realtime.procfs import cpu_seconds
from realtime.recorder_feed import RecorderFeed
from realtime.shared_memory import SharedArena
from realtime.telemetry import CallbackTelemetry

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 3.0


class EngineClient:
    """Starts the engine process for `config` on `device` and waits until it is ready to go."""

    def __init__(self, config: TuttiConfig, device: DuplexDevice, input_audio: np.ndarray | None,
                 loop: bool, headphones: bool) -> None:
        self.layout = engine_layout(config)
        self.arena = SharedArena.create(self.layout)
        self.arrays = self.arena.arrays
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        spec = EngineSpec(
            config=config, device_name=device.name, host_api=device.host_api, arena_name=self.arena.name,
            layout=self.layout, parent_pid=os.getpid(), input_audio=input_audio, loop=loop, headphones=headphones,
        )
        self.process = context.Process(target=engine_main, args=(spec, child_conn), name="tutti-engine")
        self.process.start()
        child_conn.close()
        self.input_frames = 0 if input_audio is None else len(input_audio)
        self.loop = loop
        self.voice_names = config.voice_names
        self.kinds = configured_kinds(config)
        self.ready: EngineReady | None = None
        self.panic_listeners: list[Callable[[], None]] = []  # told of every panic (the MIDI out)
        self.commands = CommandSender(self.arrays)
        self.feed = RecorderFeed(self.arrays)
        self.telemetry = CallbackTelemetry(config.engine.block_samples, config.engine.sample_rate_hz, self.arrays)
        self.parameters = LiveParameters(self.voice_names, self.arrays["mixer_voices"], self.arrays["mixer_master"])
        tasks = build_tasks(config)
        bus = ControlBus(tasks, {name: self.arrays[name] for name, _, _ in bus_layout(tasks)})
        history = FrameHistory(frames=self.arrays["history_frames"], counter=self.arrays["history_counter"])
        self.scheduler = FrameScheduler(tasks, history, synchronous=False, bus=bus)
        self.automation = SampleRing(self.arrays["automation"], self.arrays["automation_indices"])
        self.meters = SampleRing(self.arrays["meters"], self.arrays["meter_indices"])  # one reader: the display
        self.voice_f0 = self.arrays["voice_f0"]
        self.history = history
        self._state = self.arrays["engine_state"]
        self._cpu_mark = (time.perf_counter(), 0.0)

    def wait_ready(self) -> EngineReady:
        """The engine's start-up report; a TuttiError with its reason if it could not start."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._conn.poll(0.05):
                try:
                    kind, payload = self._conn.recv()
                except EOFError:
                    break
                if kind == "error":
                    self.process.join(5)
                    raise TuttiError(payload)
                self.ready = payload
                return payload
            if not self.process.is_alive():
                break
        self.kill()
        raise TuttiError(
            f"the engine process did not start (exit code {self.process.exitcode}): "
            "run `launch.py devices` to check the audio device, then try again"
        )

    def go(self, timeout_s: float = 10.0) -> None:
        """Start the stream; returns once the engine runs it."""
        self._conn.send("go")
        deadline = time.monotonic() + timeout_s
        while self._state[STATE] != RUNNING:
            if not self.process.is_alive() or time.monotonic() > deadline:
                raise TuttiError("the engine process did not start its stream: run `launch.py devices` and try again")
            time.sleep(0.005)
        self._cpu_mark = (time.perf_counter(), self._engine_cpu_s())

    # Steering

    def panic(self) -> bool:
        for listener in self.panic_listeners:
            listener()
        return self.commands.send(PANIC)

    def swap(self, voice: str, kind: str) -> None:
        """Make `voice` play `kind` (one the config names) through the engine's crossfade."""
        if voice not in self.voice_names:
            raise TuttiError(f"voice {voice!r} does not exist: voices are {', '.join(self.voice_names)}")
        if kind not in self.kinds:
            raise TuttiError(
                f"voice kind {kind!r} is not loaded: the configured kinds are {', '.join(self.kinds)}; "
                "name it in the config (voices.NAME.kind) to swap to it live"
            )
        if not self.commands.send(SWAP, self.voice_names.index(voice), self.kinds.index(kind)):
            raise TuttiError("the engine's command queue is full: try again in a moment")

    def playing_kinds(self) -> dict[str, str]:
        """What each voice plays now."""
        return {name: self.kinds[int(k)] for name, k in zip(self.voice_names, self.arrays["voice_kind"])}

    # Watching

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    @property
    def file_finished(self) -> bool:
        return self.input_frames > 0 and not self.loop and self._state[FILE_POSITION] >= self.input_frames

    @property
    def voice_faults(self) -> int:
        return int(self.arrays["voice_faulted"][: len(self.voice_names)].sum())

    def _engine_cpu_s(self) -> float:
        """The engine process's user + system CPU seconds, from /proc (0 where there is none)."""
        return cpu_seconds(self.process.pid) or 0.0

    def cpu_load(self) -> float:
        """The engine process's CPU time per wall second since the stream started."""
        wall0, cpu0 = self._cpu_mark
        wall = time.perf_counter() - wall0
        return (self._engine_cpu_s() - cpu0) / wall if wall > 0 else 0.0

    def telemetry_snapshot(self) -> dict:
        snapshot = self.telemetry.snapshot(cpu_load=self.cpu_load())
        snapshot["deadline_misses"] = self.scheduler.deadline_misses
        bus = self.scheduler.bus
        snapshot["tasks"] = {
            task.name: {"applied": int(bus.state[i, APPLIED]), "misses": int(bus.state[i, MISSES]),
                        "stale_reads": int(bus.worker[i, STALE_READS]), "failures": int(bus.worker[i, FAILURES])}
            for i, task in enumerate(self.scheduler.tasks)
        }
        snapshot["voice_faults"] = self.voice_faults
        snapshot["commands_dropped"] = self.commands.dropped
        snapshot["automation_dropped"] = self.automation.overflow_frames
        return snapshot

    # Ending

    def stop(self, abandon: bool = False) -> None:
        """Ask the engine to stop its stream and exit (abandon: the device is gone, so it exits
        without touching the stream); kill it if it has not gone within a few seconds."""
        if self.process.is_alive():
            self._state[STOP] = ABANDON_STREAM if abandon else STOP_STREAM
            self.process.join(STOP_TIMEOUT_S)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_TIMEOUT_S)

    def close(self) -> None:
        """After `stop`: release the pipe and the shared memory."""
        self._conn.close()
        self.arena.close()
