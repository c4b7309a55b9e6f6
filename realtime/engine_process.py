"""The engine process: the duplex stream, its callback and the block processor, alone.

Started by the control process (spawned, never forked) with a shared-memory arena it already
allocated. Nothing here runs Python for long beside the audio thread: the main thread only
starts the stream and then wakes every 50 ms to look at two things, the STOP cell the control
process writes and whether the control process still exists (if not, the engine stops within a
second and releases the device, leaving no orphan). Start-up talks over a pipe (the ready
report, the go signal); once the stream runs, only shared memory is used.

The callback copies between PortAudio's buffers and preallocated ones, applies queued commands,
runs the processor, feeds the recorder ring and stamps telemetry. An exception inside it is
caught: that block goes out silent and is counted, and the stream carries on.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from engine.config import TuttiConfig
from engine.errors import TuttiError
from engine.processor import BlockProcessor
from realtime.commands import CommandReader
from realtime.copying import copy_from_file, copy_input_column, copy_mix_out
from realtime.engine_layout import (
    ABANDON_STREAM,
    FILE_POSITION,
    RUNNING,
    STATE,
    STOP,
    STOPPED,
)
from realtime.recorder_feed import RecorderFeed
from realtime.round_trip import ClickProbe, jack_ports, measure_with_loopback
from realtime.shared_memory import Layout, SharedArena
from realtime.telemetry import CallbackTelemetry

SWITCH_INTERVAL_S = 0.0005
MAIN_LOOP_S = 0.05
ORPHAN_EXIT_S = 0.5  # after the control process is gone, give stream.stop() this long


@dataclass(frozen=True)
class EngineSpec:
    """Everything the engine process needs, decided and checked by the control process."""

    config: TuttiConfig
    device_name: str
    host_api: str
    arena_name: str
    layout: Layout
    parent_pid: int
    input_audio: np.ndarray | None   # the input file, already read and resampled; None: the mic
    loop: bool
    headphones: bool


@dataclass(frozen=True)
class EngineReady:
    """The engine's start-up report: what the take's config.toml and session.json need."""

    config: TuttiConfig              # resolved: echo bulk delay from the measured round trip
    device_latency_s: float
    round_trip_samples: int
    round_trip_source: str
    portaudio: str


def engine_main(spec: EngineSpec, conn: Connection) -> None:
    """Entry point of the spawned engine process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the control process decides
    arena = SharedArena.attach(spec.arena_name, spec.layout)
    try:
        host = EngineHost(spec, arena)
    except TuttiError as err:
        conn.send(("error", str(err)))
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 (reported to the control process in one line)
        conn.send(("error", f"the engine process failed to start: {type(err).__name__}: {err}"))
        sys.exit(2)
    conn.send(("ready", host.ready))
    if not _wait_for_go(conn, spec.parent_pid):
        os._exit(0)
    host.run(spec.parent_pid)


def _wait_for_go(conn: Connection, parent_pid: int) -> bool:
    """Block until the control process says go (True) or goes away (False)."""
    while os.getppid() == parent_pid:
        if conn.poll(MAIN_LOOP_S):
            try:
                return conn.recv() == "go"
            except EOFError:
                return False
    return False


def _find_device(name: str, host_api: str) -> int:
    """This process's PortAudio index of the device the control process resolved."""
    from realtime.devices import duplex_devices

    for device in duplex_devices():
        if device.name == name and device.host_api == host_api:
            return device.index
    raise TuttiError(f"audio device {name!r} ({host_api}) vanished before the engine could open it: reconnect it")


class EngineHost:
    """The stream and everything the callback touches, built and warmed before `run`."""

    def __init__(self, spec: EngineSpec, arena: SharedArena) -> None:
        import sounddevice as sd

        config = spec.config
        self.sample_rate_hz = config.engine.sample_rate_hz
        self.block_samples = config.engine.block_samples
        on_jack = "JACK" in spec.host_api
        ports_before = jack_ports() if on_jack else set()
        self._probe: ClickProbe | None = None
        self._processing = False
        index = _find_device(spec.device_name, spec.host_api)
        self.stream = sd.Stream(
            device=(index, index), samplerate=self.sample_rate_hz, blocksize=self.block_samples,
            channels=(1, 2), dtype="float32", latency="low", callback=self._callback,
        )
        device_latency_s = float(sum(self.stream.latency))
        measured = self._measure_round_trip(ports_before) if on_jack else None
        reported = round(device_latency_s * self.sample_rate_hz)
        round_trip = max(measured or reported, self.block_samples)
        config = _resolve_echo(config, spec, round_trip)
        arrays = arena.arrays
        self.processor = BlockProcessor(config, arrays=arrays)
        self.processor.scheduler.synchronous = False  # the control process's workers compute tasks
        self.telemetry = CallbackTelemetry(self.block_samples, self.sample_rate_hz, arrays)
        self.commands = CommandReader(arrays)
        self.feed = RecorderFeed(arrays)
        self.state = arrays["engine_state"]
        self._file = spec.input_audio
        self._loop = spec.loop
        self._input_buffer = np.zeros(self.block_samples * 32, dtype=np.float32)
        self._warm_up_callback()
        self.ready = EngineReady(
            config=config, device_latency_s=device_latency_s, round_trip_samples=round_trip,
            round_trip_source="measured (JACK loopback click)" if measured else "reported",
            portaudio=sd.get_portaudio_version()[1],
        )

    def _measure_round_trip(self, ports_before: set[str]) -> int | None:
        """Run the stream briefly with a click probe through a JACK loopback of our own ports."""
        self._probe = ClickProbe(self.sample_rate_hz)
        self.stream.start()
        try:
            ours = jack_ports() - ports_before

            def wait(condition) -> None:  # noqa: ANN001
                deadline = time.monotonic() + 3.0
                while not condition() and time.monotonic() < deadline:
                    time.sleep(0.01)

            return measure_with_loopback(self._probe, ours, wait)
        finally:
            self.stream.stop()
            self._probe = None

    def _warm_up_callback(self) -> None:
        """Run the callback's whole path once on PortAudio's buffer types, then reset."""
        frames = self.block_samples
        indata = np.zeros((frames, 1), dtype=np.float32)
        outdata = np.zeros((frames, 2), dtype=np.float32)
        self._processing = True
        recording = self.feed.recording
        self.feed.set_recording(False)
        self._callback(indata, outdata, frames, None, None)
        self.feed.set_recording(recording)
        self._processing = False
        self.processor.reset()
        self.telemetry.reset()
        self.state[FILE_POSITION] = 0

    def _callback(self, indata, outdata, frames, time_info, status) -> None:  # noqa: ANN001
        if not self._processing:  # the round-trip probe, before the take
            if self._probe is not None:
                self._probe.process(indata, outdata, frames)
            else:
                outdata.fill(0.0)
            return
        arrival = time.perf_counter()
        cpu_start = time.thread_time()
        try:
            processor = self.processor
            self.commands.apply_pending(processor)
            buffer = self._input_buffer
            if self._file is not None:
                self.state[FILE_POSITION] = copy_from_file(
                    self._file, self.state[FILE_POSITION], self._loop, buffer, frames
                )
            else:
                copy_input_column(indata, buffer, frames)
            processor.process(buffer, frames)
            copy_mix_out(processor.mix_out, outdata, frames)
            self.feed.push(buffer, processor.mix_out, processor.voice_out, frames)
        except Exception:  # noqa: BLE001 (silence for this block, counted; the stream goes on)
            outdata.fill(0.0)
            self.telemetry.count_exception()
        self.telemetry.record_callback(arrival, time.perf_counter(), bool(status), time.thread_time() - cpu_start)

    def run(self, parent_pid: int) -> None:
        """Stream until the control process says stop or disappears."""
        previous_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        gc.collect()
        gc.freeze()
        gc.disable()
        self._processing = True
        self.telemetry.reset()
        self.stream.start()
        self.state[STATE] = RUNNING
        orphaned = False
        while True:
            time.sleep(MAIN_LOOP_S)
            if self.state[STOP]:
                break
            if os.getppid() != parent_pid:
                orphaned = True
                break
        if self.state[STOP] == ABANDON_STREAM:
            os._exit(0)  # the device is gone: PortAudio's stop() would hang
        if orphaned:
            threading.Timer(ORPHAN_EXIT_S, os._exit, args=(0,)).start()
        self.stream.stop()
        self.stream.close()
        gc.enable()
        gc.unfreeze()
        sys.setswitchinterval(previous_interval)
        self.state[STATE] = STOPPED


def _resolve_echo(config: TuttiConfig, spec: EngineSpec, round_trip_samples: int) -> TuttiConfig:
    """The echo canceller listens to a microphone on speakers: its bulk delay is the round trip.

    With --headphones or a file as the input there is no acoustic path, so it is off. The
    resolved values go into the take's config.toml, so `perform` reproduces the take.
    """
    echo = config.echo
    if spec.headphones or spec.input_audio is not None:
        echo = dataclasses.replace(echo, enabled=False)
    elif echo.enabled and echo.bulk_delay_samples == 0:
        echo = dataclasses.replace(echo, bulk_delay_samples=round_trip_samples)
    return dataclasses.replace(config, echo=echo)
