"""The live host: one duplex stream feeding the shared block processor (DESIGN.md section 9).

The callback copies the input block into a preallocated buffer, runs the processor (numba
kernels that release the GIL), copies the mix out and hands everything to the recorder's
ring. It never allocates buffers, locks, logs or touches Qt. A watchdog on callback arrivals
notices a device that vanished (PortAudio's stop() hangs when a JACK server dies) and closes
the recording without waiting on the stream.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo.melody import DEMO_PATH
from engine.audio_io import read_mono
from engine.config import TuttiConfig, config_to_dict, config_to_toml
from engine.errors import TuttiError
from engine.features.frames import FEATURE_VERSION
from engine.features.latency import measure_pitch_settle_ms
from engine.latency import measure_onset_latency_samples
from engine.offline import perform_file, prepare_output_dir
from engine.parameters import LiveParameters
from engine.processor import BlockProcessor
from realtime.console import Console
from realtime.copying import copy_from_file, copy_input_column, copy_mix_out
from realtime.devices import NO_DEVICE_HINT, DuplexDevice, duplex_devices, resolve_device
from realtime.midi import MidiController
from realtime.recorder import SessionRecorder
from realtime.round_trip import ClickProbe, jack_ports, measure_with_loopback
from realtime.telemetry import CallbackTelemetry
from realtime.workers import TaskWorker

SWITCH_INTERVAL_S = 0.0005
WATCHDOG_MIN_S = 0.5          # silence longer than this (or 20 blocks) means the device is gone
TELEMETRY_PRINT_S = 2.0


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


def default_session_dir() -> Path:
    return Path("sessions") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


class LiveSession:
    """A running duplex stream with its processor, task worker, recorder and telemetry."""

    def __init__(self, config: TuttiConfig, device: DuplexDevice, options: LiveOptions) -> None:
        import sounddevice as sd

        self.device = device
        self.options = options
        self.sample_rate_hz = config.engine.sample_rate_hz
        self.block_samples = config.engine.block_samples
        self._check_rate(device)
        on_jack = "JACK" in device.host_api
        ports_before = jack_ports() if on_jack else set()
        self._probe: ClickProbe | None = None
        self.stream = sd.Stream(
            device=(device.index, device.index),
            samplerate=self.sample_rate_hz,
            blocksize=self.block_samples,
            channels=(1, 2),
            dtype="float32",
            latency="low",
            callback=self._callback,
        )
        self.device_latency_s = float(sum(self.stream.latency))
        measured = self._measure_round_trip(ports_before) if on_jack else None
        self.round_trip_source = "measured (JACK loopback click)" if measured else "reported"
        reported = round(self.device_latency_s * self.sample_rate_hz)
        self.round_trip_samples = max(measured or reported, self.block_samples)
        self.config = self._resolve_echo(config)
        self.processor = BlockProcessor(self.config)
        self.worker = TaskWorker(self.processor.scheduler)
        self.telemetry = CallbackTelemetry(self.block_samples, self.sample_rate_hz)
        self._input_buffer = np.zeros(self.block_samples * 32, dtype=np.float32)
        self._file = (
            read_mono(options.input_file, self.sample_rate_hz) if options.input_file is not None else None
        )
        self._file_position = 0
        self._warm_up_callback()
        self.recorder: SessionRecorder | None = None
        self.stop_reason = ""
        self.device_lost = False
        self._stop_requested = False
        self.parameters = LiveParameters(
            self.processor.voice_names, self.processor.params.voices, self.processor.params.master
        )
        self.midi = self._open_midi()

    def _open_midi(self) -> MidiController | None:
        """MIDI control from the configured port and/or a virtual input, with the saved bindings."""
        midi = self.config.midi
        if not (midi.port or midi.virtual_port or midi.bindings):
            return None
        try:
            controller = MidiController(self.parameters, midi.bindings)
        except TuttiError as err:
            if midi.port:
                raise
            print(f"tutti: playing without MIDI: {err}", file=sys.stderr, flush=True)
            return None
        controller.on_panic = self.processor.request_panic
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
        """Compile the callback's copy kernels for PortAudio's buffer types before the stream runs."""
        frames = self.block_samples
        indata = np.zeros((frames, 1), dtype=np.float32)
        outdata = np.zeros((frames, 2), dtype=np.float32)
        copy_input_column(indata, self._input_buffer, frames)
        if self._file is not None:
            copy_from_file(self._file, 0, False, self._input_buffer, frames)
        copy_mix_out(self.processor.mix_out, outdata, frames)
        self.processor.reset()

    def _check_rate(self, device: DuplexDevice) -> None:
        import sounddevice as sd

        try:
            sd.check_input_settings(device.index, channels=1, dtype="float32", samplerate=self.sample_rate_hz)
            sd.check_output_settings(device.index, channels=2, dtype="float32", samplerate=self.sample_rate_hz)
        except sd.PortAudioError as err:
            raise TuttiError(
                f"device {device.name!r} refuses {self.sample_rate_hz} Hz ({err}): "
                "set engine.sample_rate_hz to a rate it supports (48000 or 96000)"
            ) from None

    def _resolve_echo(self, config: TuttiConfig) -> TuttiConfig:
        """The echo canceller listens to a microphone on speakers: its bulk delay is the round trip.

        With --headphones or a file as the input there is no acoustic path, so it is off. The
        resolved values go into the take's config.toml, so `perform` reproduces the take.
        """
        echo = config.echo
        if self.options.headphones or self.options.input_file is not None:
            echo = dataclasses.replace(echo, enabled=False)
        elif echo.enabled and echo.bulk_delay_samples == 0:
            echo = dataclasses.replace(echo, bulk_delay_samples=self.round_trip_samples)
        return dataclasses.replace(config, echo=echo)

    @property
    def file_finished(self) -> bool:
        return self._file is not None and not self.options.loop and self._file_position >= len(self._file)

    def _callback(self, indata, outdata, frames, time_info, status) -> None:  # noqa: ANN001
        if self._probe is not None:
            self._probe.process(indata, outdata, frames)
            return
        arrival = time.perf_counter()
        buffer = self._input_buffer
        if self._file is not None:
            self._file_position = copy_from_file(self._file, self._file_position, self.options.loop, buffer, frames)
        else:
            copy_input_column(indata, buffer, frames)
        processor = self.processor
        processor.process(buffer, frames)
        copy_mix_out(processor.mix_out, outdata, frames)
        if self.recorder is not None:
            self.recorder.push(buffer, processor.mix_out, processor.voice_out, frames)
        self.telemetry.record_callback(arrival, time.perf_counter(), bool(status))

    def run(self) -> None:
        """Stream until the duration passes, the input file ends, Ctrl-C, or the device vanishes."""
        options = self.options
        if options.record_dir is not None:
            if options.record_dir.exists():
                shutil.rmtree(options.record_dir)  # prepare_output_dir allowed it (--force)
            self.recorder = SessionRecorder(
                options.record_dir, self.sample_rate_hz, self.processor.voice_names,
                input_shift_samples=self.round_trip_samples,
            )
            self.recorder.start()
        self.worker.start()
        Console(self.config, self.processor, self.parameters, self.midi, self.request_stop).start()
        previous_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        gc.collect()
        gc.freeze()
        gc.disable()
        self.started_at = dt.datetime.now().isoformat(timespec="seconds")
        watchdog_s = max(WATCHDOG_MIN_S, 20 * self.block_samples / self.sample_rate_hz)
        self.stream.start()
        started = time.perf_counter()
        last_print = started
        try:
            while True:
                time.sleep(0.02)
                now = time.perf_counter()
                self.stop_reason = self._reason_to_stop(now, started, watchdog_s)
                if self.stop_reason:
                    break
                if options.print_telemetry and now - last_print >= TELEMETRY_PRINT_S:
                    last_print = now
                    print(self.status_line(), flush=True)
                if now - started > 1.0 and int((now - started) * 50) % 100 == 0:
                    gc.collect(0)  # young-generation collection on this thread, never the audio thread
        except KeyboardInterrupt:
            self.stop_reason = "stopped by Ctrl-C"
        finally:
            if not self.device_lost:
                self.stream.stop()
                self.stream.close()
            gc.enable()
            gc.unfreeze()
            sys.setswitchinterval(previous_interval)
            self.worker.stop()
            if self.midi is not None:
                self.midi.close()
            self.recording_summary = self.recorder.stop() if self.recorder is not None else None

    def _reason_to_stop(self, now: float, started: float, watchdog_s: float) -> str:
        """Why the take should end now, or "" to go on."""
        elapsed = now - started
        if self.options.duration_s is not None and elapsed >= self.options.duration_s:
            return f"duration {self.options.duration_s:g} s reached"
        if self._stop_requested:
            return "stopped from the terminal"
        if self.file_finished and self.options.duration_s is None:
            return "input file finished"
        arrival = self.telemetry.last_arrival_s
        silent_s = now - (arrival if arrival > 0 else started)
        if silent_s > watchdog_s and elapsed > 1.0:
            self.device_lost = True
            return f"audio device {self.device.name!r} stopped delivering audio ({silent_s:.1f} s without a callback)"
        if self.recorder is not None and self.recorder.error:
            return self.recorder.error
        return ""

    def request_stop(self) -> None:
        """End the take at the main loop's next check (any thread)."""
        self._stop_requested = True

    def status_line(self) -> str:
        t = self.telemetry.snapshot()
        key = self.processor.tempo_key.current
        musical = f" | {key.tempo_bpm:.0f} BPM, {key.key_name}" if key is not None else ""
        return (
            f"callbacks {t['callbacks']}  xruns {t['xruns']}  callback p50 {t['callback_ms_p50']:.2f} ms "
            f"p99 {t['callback_ms_p99']:.2f} ms max {t['callback_ms_max']:.2f} ms  "
            f"misses {self.processor.scheduler.deadline_misses}  cpu {t['cpu_load']:.0%}{musical}"
        )

    def session_record(self) -> dict:
        """session.json for a live take."""
        import sounddevice as sd

        onset_ms = measure_onset_latency_samples(self.config) * 1000.0 / self.sample_rate_hz
        device_ms = self.device_latency_s * 1000.0
        telemetry = self.telemetry.snapshot()
        telemetry["deadline_misses"] = self.processor.scheduler.deadline_misses
        telemetry["voice_faults"] = self.processor.fault_count
        telemetry["latency_ms"] = {
            "onset": onset_ms,
            "pitch_settle": measure_pitch_settle_ms(self.sample_rate_hz, 110.0),
            "device": device_ms,
            "total": onset_ms + device_ms,
        }
        key = self.processor.tempo_key.current
        return {
            "mode": "live",
            "host_api": self.device.host_api,
            "device": self.device.name,
            "portaudio": sd.get_portaudio_version()[1],
            "start_time": self.started_at,
            "stop_reason": self.stop_reason,
            "sample_rate_hz": self.sample_rate_hz,
            "block_samples": self.block_samples,
            "feature_version": FEATURE_VERSION,
            "input": str(self.options.input_file) if self.options.input_file else "microphone",
            "voices": list(self.processor.voice_names),
            "models": {name: voice.kind for name, voice in self.config.voices},
            "index": None,
            "round_trip": {"samples": self.round_trip_samples, "source": self.round_trip_source},
            "echo_canceller": None if self.processor.echo is None else {
                "bulk_delay_samples": self.processor.echo.bulk_delay_samples,
                "erle_db": self.processor.echo.erle_db,
            },
            "midi": self._midi_record(),
            "tempo_key": None if key is None else {"tempo_bpm": key.tempo_bpm, "key": key.key_name},
            "telemetry": telemetry,
            "recording": self.recording_summary,
            "config": config_to_dict(self.config),
        }


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
    """`launch.py live`: stream through a duplex device, or perform offline when there is none."""
    if options.record_dir is not None:
        prepare_output_dir(options.record_dir, options.force)
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
        return perform_file(source, folder, config, force=options.force, mode="offline-fallback")
    device = resolve_device(options.device)
    session = LiveSession(config, device, options)
    print(
        f"tutti: live on {device.name} ({device.host_api}), {session.sample_rate_hz} Hz, "
        f"block {session.block_samples}, voices {', '.join(session.processor.voice_names)}",
        flush=True,
    )
    session.run()
    record = session.session_record()
    if options.record_dir is not None:
        (options.record_dir / "config.toml").write_text(config_to_toml(session.config), encoding="utf-8")
        (options.record_dir / "session.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    record["device_lost"] = session.device_lost
    return record
