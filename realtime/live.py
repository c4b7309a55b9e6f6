"""`launch.py live` in the control process: the engine process plays, everything else is here.

The process the user started resolves the device and checks every option, then leaves the
JACK graph and spawns the engine process (realtime/engine_process.py), which holds the duplex
stream, the callback and the block processor alone. Here, beside it and meeting it only in
shared memory, run the task workers, the recorder's writer, MIDI, the console and telemetry
(DESIGN.md sections 9 and 11: a Python thread in the callback's process costs hundreds of
xruns). A watchdog notices a device that stopped delivering audio (PortAudio's stop() hangs
when a JACK server dies) and an engine process that died, and closes the take with every file
readable either way.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo.melody import DEMO_PATH
from engine.audio_io import read_mono
from engine.automation import automation_record
from engine.config import TuttiConfig, config_to_dict, config_to_toml
from engine.errors import TuttiError
from engine.features.frames import FEATURE_VERSION
from engine.features.latency import measure_pitch_settle_ms
from engine.latency import measure_onset_latency_samples
from engine.offline import perform_file, prepare_output_dir
from engine.processor import TEMPO_KEY_TASK
from engine.safe_files import atomic_write_text
from engine.tempo_key import TempoKeyTask
from engine.voices.factory import part_labels
from realtime.console import Console
from realtime.devices import NO_DEVICE_HINT, DuplexDevice, duplex_devices, resolve_device
from realtime.engine_client import EngineClient
from realtime.midi import MidiController
from realtime.midi_out import PlanMidiOut, open_plan_midi_out
from realtime.recorder import SessionRecorder
from realtime.workers import TaskWorkers

WATCHDOG_MIN_S = 0.5          # silence longer than this (or 20 blocks) means the device is gone
TELEMETRY_PRINT_S = 2.0
MAIN_LOOP_S = 0.02
MIDI_CLOSE_TIMEOUT_S = 2.0    # closing MIDI against a dead JACK server can hang


@dataclass(frozen=True)
class LiveOptions:
    """What the `live` subcommand was asked to do."""

    device: str | None = None
    input_file: Path | None = None
    loop: bool = False
    duration_s: float | None = None
    record_dir: Path | None = None
    force: bool = False
    headphones: bool = False
    print_telemetry: bool = True
    gui: bool | None = None  # the mixer window: None = when a display exists (gui/app.py)


def default_session_dir() -> Path:
    return Path("sessions") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def _check_rate(device: DuplexDevice, sample_rate_hz: int) -> None:
    import sounddevice as sd

    try:
        sd.check_input_settings(device.index, channels=1, dtype="float32", samplerate=sample_rate_hz)
        sd.check_output_settings(device.index, channels=2, dtype="float32", samplerate=sample_rate_hz)
    except sd.PortAudioError as err:
        raise TuttiError(
            f"device {device.name!r} refuses {sample_rate_hz} Hz ({err}): "
            "set engine.sample_rate_hz to a rate it supports (48000 or 96000)"
        ) from None


def _leave_audio_graph() -> None:
    """PortAudio joined the audio server (a JACK client) when it listed devices; the engine
    process holds the stream, so this process leaves."""
    import sounddevice as sd

    if sd._initialized:  # noqa: SLF001 (sounddevice has no public call for it)
        sd._terminate()  # noqa: SLF001


class LiveSession:
    """A live take seen from the control process: the engine process, task workers, recorder,
    MIDI, console and telemetry."""

    def __init__(self, config: TuttiConfig, device: DuplexDevice, options: LiveOptions) -> None:
        self.device = device
        self.options = options
        self.sample_rate_hz = config.engine.sample_rate_hz
        self.block_samples = config.engine.block_samples
        _check_rate(device, self.sample_rate_hz)
        audio = read_mono(options.input_file, self.sample_rate_hz) if options.input_file is not None else None
        _leave_audio_graph()
        self.engine = EngineClient(config, device, audio, options.loop, options.headphones)
        self.parameters = self.engine.parameters
        self.midi: MidiController | None = None
        self.midi_out: PlanMidiOut | None = None
        try:
            self.midi = self._open_midi(config)  # while the engine process warms up
            self.midi_out = open_plan_midi_out(config, self.engine.scheduler, self.engine.history.counter)
            if self.midi_out is not None:
                self.engine.panic_listeners.append(self.midi_out.panic)
            ready = self.engine.wait_ready()
        except BaseException:
            self._release()
            raise
        self.config = ready.config
        self.device_latency_s = ready.device_latency_s
        self.round_trip_samples = ready.round_trip_samples
        self.round_trip_source = ready.round_trip_source
        self.portaudio = ready.portaudio
        self.voice_names = self.engine.voice_names
        self.workers = TaskWorkers(self.engine.scheduler)
        self.recorder: SessionRecorder | None = None
        self.recording_summary: dict | None = None
        self.stop_reason = ""
        self.failure: str | None = None  # why the take ended abnormally (exit code 1)
        self.started_at = ""
        self._stop_requested = False
        self._automation: list[np.ndarray] = []
        self._started = self._last_print = 0.0
        self._watchdog_s = WATCHDOG_MIN_S

    def _open_midi(self, config: TuttiConfig) -> MidiController | None:
        """MIDI control from the configured port and/or a virtual input, with the saved bindings."""
        midi = config.midi
        if not (midi.port or midi.virtual_port or midi.bindings):
            return None
        try:
            controller = MidiController(self.parameters, midi.bindings)
        except TuttiError as err:
            if midi.port:
                raise
            print(f"tutti: playing without MIDI: {err}", file=sys.stderr, flush=True)
            return None
        controller.on_panic = self.engine.panic
        try:
            if midi.port:
                controller.connect(midi.port)
            if midi.virtual_port:
                controller.open_virtual()
        except TuttiError:
            controller.close()
            raise
        controller.start_watch()
        return controller

    def start(self) -> None:
        """Open the recording, start the workers and the console, then the engine's stream."""
        options = self.options
        if options.record_dir is not None:
            self.recorder = SessionRecorder(
                options.record_dir, self.sample_rate_hz, self.voice_names,
                input_shift_samples=self.round_trip_samples, feed=self.engine.feed,
            )
            self._write_take_files(provisional=True)
            self.recorder.start()
        self.workers.start()
        if self.midi_out is not None:
            self.midi_out.start()
        Console(self.engine, self.parameters, self.midi, self.request_stop).start()
        self.started_at = dt.datetime.now().isoformat(timespec="seconds")
        self._watchdog_s = max(WATCHDOG_MIN_S, 20 * self.block_samples / self.sample_rate_hz)
        self.engine.go()
        self._started = self._last_print = time.perf_counter()

    def poll(self) -> bool:
        """One look at the take (every MAIN_LOOP_S, from this loop or a GUI's timer): collect the
        automation log, print telemetry now and then; False once the take should end."""
        now = time.perf_counter()
        self._automation.append(self.engine.automation.read_all())
        self.stop_reason = self._reason_to_stop(now, self._started, self._watchdog_s)
        if self.stop_reason:
            return False
        if self.options.print_telemetry and now - self._last_print >= TELEMETRY_PRINT_S:
            self._last_print = now
            print(self.status_line(), flush=True)
        return True

    def run(self) -> None:
        """Stream until the duration passes, the input file ends, Ctrl-C, the device vanishes or
        the engine process dies; then close the take with every file readable."""
        try:
            self.start()
            while self.poll():
                time.sleep(MAIN_LOOP_S)
        except KeyboardInterrupt:
            self.stop_reason = "stopped by Ctrl-C"
        except TuttiError as err:
            self.stop_reason = self.failure = str(err)
        finally:
            self.shut_down()

    def shut_down(self) -> None:
        """Engine first (abandoned if its device is gone), then the recording, then the rest;
        MIDI, which can hang against a dead JACK server, last and bounded."""
        self.engine.stop(abandon=self.failure is not None)
        self.telemetry = self.engine.telemetry_snapshot()
        self._automation.append(self.engine.automation.read_all())
        if self.recorder is not None:
            self.recording_summary = self.recorder.stop()
        self.workers.stop()
        for midi in (self.midi_out, self.midi):
            if midi is not None:
                closer = threading.Thread(target=midi.close, name="tutti-midi-close", daemon=True)
                closer.start()
                closer.join(MIDI_CLOSE_TIMEOUT_S)

    def _release(self) -> None:
        """Undo a start-up that failed half-way."""
        self.engine.stop()
        self.engine.close()
        if self.midi_out is not None:
            self.midi_out.close()
        if self.midi is not None:
            self.midi.close()

    def _reason_to_stop(self, now: float, started: float, watchdog_s: float) -> str:
        """Why the take should end now, or "" to go on; sets `failure` for abnormal ends."""
        elapsed = now - started
        engine = self.engine
        if not engine.alive:
            self.failure = (f"the engine process died (exit code {engine.process.exitcode}) after "
                            f"{elapsed:.1f} s")
            return self.failure
        if self.options.duration_s is not None and elapsed >= self.options.duration_s:
            return f"duration {self.options.duration_s:g} s reached"
        if self._stop_requested:
            return "stopped from the terminal"
        if engine.file_finished and self.options.duration_s is None:
            return "input file finished"
        arrival = engine.telemetry.last_arrival_s
        silent_s = now - (arrival if arrival > 0 else started)
        if silent_s > watchdog_s and elapsed > 1.0:
            self.failure = (f"audio device {self.device.name!r} stopped delivering audio "
                            f"({silent_s:.1f} s without a callback)")
            return self.failure
        if self.recorder is not None and self.recorder.error:
            return self.recorder.error
        return ""

    def request_stop(self) -> None:
        """End the take at the main loop's next check (any thread)."""
        self._stop_requested = True

    def tempo_key_text(self) -> str:
        current = self.engine.scheduler.bus.current(TEMPO_KEY_TASK)
        if current is None:
            return ""
        key = TempoKeyTask.decode(*current)
        return f" | {key.tempo_bpm:.0f} BPM, {key.key_name}"

    def status_line(self) -> str:
        t = self.engine.telemetry_snapshot()
        return (
            f"callbacks {t['callbacks']}  xruns {t['xruns']}  callback p50 {t['callback_ms_p50']:.2f} ms "
            f"p99 {t['callback_ms_p99']:.2f} ms max {t['callback_ms_max']:.2f} ms  "
            f"misses {t['deadline_misses']}  faults {t['voice_faults']}  engine cpu {t['cpu_load']:.0%}"
            f"{self.tempo_key_text()}"
        )

    def session_record(self, final: bool = True) -> dict:
        """session.json for a live take (provisional until the take has ended)."""
        telemetry = dict(self.telemetry) if final else {}
        if final:
            onset_ms = measure_onset_latency_samples(self.config) * 1000.0 / self.sample_rate_hz
            device_ms = self.device_latency_s * 1000.0
            telemetry["latency_ms"] = {
                "onset": onset_ms,
                "pitch_settle": measure_pitch_settle_ms(self.sample_rate_hz, 110.0),
                "device": device_ms,
                "total": onset_ms + device_ms,
            }
        current = self.engine.scheduler.bus.current(TEMPO_KEY_TASK)
        key = None if current is None else TempoKeyTask.decode(*current)
        return {
            "mode": "live",
            "provisional": not final,
            "host_api": self.device.host_api,
            "device": self.device.name,
            "portaudio": self.portaudio,
            "start_time": self.started_at,
            "stop_reason": self.stop_reason,
            "sample_rate_hz": self.sample_rate_hz,
            "block_samples": self.block_samples,
            "feature_version": FEATURE_VERSION,
            "input": str(self.options.input_file) if self.options.input_file else "microphone",
            "voices": list(self.voice_names),
            "parts": part_labels(self.config),
            "models": self.engine.playing_kinds(),
            "index": None,
            "round_trip": {"samples": self.round_trip_samples, "source": self.round_trip_source},
            "echo_canceller": None if not self.config.echo.active else {
                "bulk_delay_samples": self.config.echo.bulk_delay_samples,
            },
            "midi": self._midi_record(),
            "midi_out": [] if self.midi_out is None else list(self.midi_out.ports.names),
            "automation": automation_record(
                np.concatenate([np.zeros((0, 4)), *self._automation]), self.voice_names, self.engine.kinds
            ),
            "tempo_key": None if key is None else {"tempo_bpm": key.tempo_bpm, "key": key.key_name},
            "telemetry": telemetry,
            "recording": self.recording_summary,
            "task_errors": list(self.workers.errors),
            "config": config_to_dict(self.config),
        }

    def _write_take_files(self, provisional: bool) -> None:
        """config.toml and session.json beside the take's WAVs, each written atomically: a
        provisional session.json at the start (a killed take can still be reproduced), the
        final one at the end."""
        folder = self.options.record_dir
        if provisional:
            atomic_write_text(folder / "config.toml", config_to_toml(self.config))
        atomic_write_text(folder / "session.json", json.dumps(self.session_record(final=not provisional), indent=2))

    def finish(self) -> dict:
        """After `run`: the final session record, written into the take's folder."""
        record = self.session_record()
        if self.options.record_dir is not None:
            self._write_take_files(provisional=False)
        self.engine.close()
        return record

    def _midi_record(self) -> dict:
        if self.midi is None:
            return {"bindings": [], "events": [], "log": []}
        return {
            "bindings": [binding.to_dict() for binding in self.midi.bindings],
            "events": list(self.midi.events),
            "log": [
                {"time_s": e.time_s, "port": e.port, "message": list(e.message), "parameter": e.parameter}
                for e in self.midi.log
            ],
        }


def run_live(config: TuttiConfig, options: LiveOptions) -> dict:
    """`launch.py live`: stream through a duplex device, or perform offline when there is none.

    The record's "failure" is None for a take that ended normally, else the one-line reason
    (the device vanished, the engine process died): the caller exits with code 1.
    """
    if options.record_dir is not None:
        prepare_output_dir(options.record_dir, options.force, config.voice_names)
    devices = duplex_devices()
    if not devices:
        source = options.input_file or DEMO_PATH
        folder = options.record_dir or default_session_dir()
        print(
            f"tutti: no audio device with an input and an output: {NO_DEVICE_HINT}; "
            f"performing {source} offline into {folder}",
            file=sys.stderr, flush=True,
        )
        folder.parent.mkdir(parents=True, exist_ok=True)
        record = perform_file(source, folder, config, force=options.force, mode="offline-fallback")
        record["failure"] = None
        return record
    device = resolve_device(options.device)
    session = LiveSession(config, device, options)
    print(
        f"tutti: live on {device.name} ({device.host_api}), {session.sample_rate_hz} Hz, "
        f"block {session.block_samples}, voices {', '.join(session.voice_names)}",
        flush=True,
    )
    from gui.app import run_in_window, window_wanted

    if window_wanted(options.gui):
        run_in_window(session)
    else:
        session.run()
    record = session.finish()
    record["failure"] = session.failure
    return record
