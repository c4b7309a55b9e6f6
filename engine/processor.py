"""The block processor shared by the live host and the offline commands.

It takes input blocks of any size (16..4096 samples), feeds the causal analysis, steps every
voice once per 4 ms control frame, renders the voices and mixes them. Blocks are split at
frame edges, so output sample n depends only on input up to n, whatever the block size: live
and offline runs agree sample for sample. After warm-up the per-block path allocates nothing.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from engine.config import TuttiConfig
from engine.echo import EchoCanceller, add_calibration_noise
from engine.errors import TuttiError
from engine.features.frames import N_FEATURES
from engine.features.streaming import StreamingAnalyzer
from engine.mixer import (
    FULL_SCALE_SLEW_S,
    GAIN,
    INPUT_MONITOR,
    LIMITER_RELEASE_S,
    MASTER_GAIN,
    MUTE,
    PAN,
    SOLO,
    MixerParams,
    db_to_gain,
    mix_block,
    pan_gains,
)
from engine.rates import MAX_BLOCK_SAMPLES, check_block_samples, frame_samples
from engine.ring import INDEX_CELLS, SampleRing
from engine.scheduling import HISTORY_FRAMES, FrameHistory, FrameScheduler, FrameTask, ControlBus, bus_layout
from engine.synth.reverb import Reverb
from engine.synth.rng import rng_state
from engine.conductor.task import ConductorTask, conductor_model_path
from engine.parts import MAX_NOTES, PART_ROWS
from engine.tempo_key import TempoKey, TempoKeyTask
from engine.voices import Voice, build_voice
from engine.voices.crossfade import Crossfade
from engine.voices.groups import VoiceGroups
from engine.voices.test_kinds import TASK_PLAN_KIND, PlanTestTask

SWAP_FADE_S = 0.05
PANIC_SLEW_FACTOR = 4      # panic fades 4x faster than a fader: +12 dB to silence in 10 ms
PANIC_RAMP_S = FULL_SCALE_SLEW_S  # voices are reset once the fade has reached silence
TEMPO_KEY_TASK = 0         # index of the tempo/key task in `build_tasks`
REVERB_SEED = 1            # the shared reverb's line lengths and signs
AUTOMATION_SLOTS = 4096    # automation records the audio thread can queue before a reader drains
# Automation record: (sample, row, column, value). row >= 0: voice parameter, -1: master
# parameter, SWAP_ROW: voice `column` swapped to kind `value`, PANIC_ROW: panic.
MASTER_ROW, SWAP_ROW, PANIC_ROW = -1.0, -2.0, -3.0
METER_BLOCKS = 1024        # meter records (one per block) a display can fall behind by


def meter_channels(n_voices: int) -> int:
    """Values in one meter record: (peak, mean square) of each voice (pre-fader), of the input
    and of the mix, then the limiter's deepest gain in dB and a spare."""
    return 2 * (n_voices + 3)


def build_tasks(config: TuttiConfig) -> list[FrameTask]:
    """The background tasks a processor schedules, in a fixed order (both processes build them)."""
    tasks: list[FrameTask] = [TempoKeyTask()]
    if any(voice.kind == TASK_PLAN_KIND for _, voice in config.voices):
        tasks.append(PlanTestTask())
    if any(voice.role for _, voice in config.voices):
        tasks.append(ConductorTask(conductor_model_path(config.conductor.model)))
    return tasks


def processor_layout(config: TuttiConfig) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of the arrays a processor shares with other threads or processes:
    mixer parameters, fault flags, the kind each voice plays, analysis history, control bus."""
    n_voices = len(config.voices)
    return [
        ("mixer_voices", (n_voices, 4), "float64"),
        ("mixer_master", (2,), "float64"),
        ("voice_faulted", (max(1, n_voices),), "int64"),
        ("voice_kind", (max(1, n_voices),), "int64"),
        ("history_frames", (HISTORY_FRAMES, N_FEATURES), "float64"),
        ("history_counter", (1,), "int64"),
        ("automation", (AUTOMATION_SLOTS, 4), "float64"),
        ("automation_indices", (INDEX_CELLS,), "int64"),
        ("meters", (METER_BLOCKS, meter_channels(n_voices)), "float32"),
        ("meter_indices", (INDEX_CELLS,), "int64"),
        ("voice_f0", (max(1, n_voices),), "float64"),
        *bus_layout(build_tasks(config)),
    ]


def configured_kinds(config: TuttiConfig) -> tuple[str, ...]:
    """Every voice kind the config names, in order of first appearance: each voice slot holds
    one built instance of each, so a swap never builds anything while the stream runs."""
    return tuple(dict.fromkeys(voice.kind for _, voice in config.voices))


class BlockProcessor:
    """Analysis -> voices -> mix, one block at a time, into preallocated buffers.

    After `process(block)` returns n, `voice_out[:, :n]` holds each voice (mono, pre-fader)
    and `mix_out[:n]` the stereo mix. `frame` holds the latest analysis frame and
    `frame_index` counts frames since start. `arrays` (from `processor_layout`) may be views of
    shared memory: other processes then publish the mixer parameters and read faults, the kind
    each voice plays, the analysis history and the control bus there. Reference voices step and
    render in instrument groups (engine/voices/groups.py: one compiled call per frame and per
    sub-block for all of them); `batched=False` calls every voice alone instead (the same
    output sample for sample: tests and bench/calls.py compare both).
    """

    def __init__(self, config: TuttiConfig, voices: list[Voice] | None = None,
                 arrays: dict[str, np.ndarray] | None = None, batched: bool = True) -> None:
        self.config = config
        self.sample_rate_hz = config.engine.sample_rate_hz
        self.frame_samples = frame_samples(self.sample_rate_hz)
        if arrays is None:
            arrays = {name: np.zeros(shape, dtype=dtype) for name, shape, dtype in processor_layout(config)}
        self.arrays = arrays
        self.analyzer = StreamingAnalyzer(
            self.sample_rate_hz,
            f0_min_hz=config.analysis.f0_min_hz,
            f0_max_hz=config.analysis.f0_max_hz,
        )
        self.kinds = configured_kinds(config)
        self._alternatives = self._build_alternatives(voices)
        self.voice_names = config.voice_names if voices is None else tuple(voice.name for voice in voices)
        n_voices = len(self.voice_names)
        self.voice_out = np.zeros((n_voices, MAX_BLOCK_SAMPLES), dtype=np.float32)
        self.mix_out = np.zeros((MAX_BLOCK_SAMPLES, 2), dtype=np.float32)
        self._rows = [self.voice_out[i] for i in range(n_voices)]
        fade_samples = round(SWAP_FADE_S * self.sample_rate_hz)
        self._fades = [Crossfade(name, fade_samples) for name in self.voice_names]
        self.voice_kind = arrays["voice_kind"]
        self.voices: list[Voice] = [None] * n_voices  # what each slot plays now (a voice or its fade)
        self.frame = np.zeros(N_FEATURES)
        self.frame_index = 0
        self.history = FrameHistory(frames=arrays["history_frames"], counter=arrays["history_counter"])
        self.tasks = build_tasks(config)
        bus = ControlBus(self.tasks, {name: arrays[name] for name, _, _ in bus_layout(self.tasks)})
        self.scheduler = FrameScheduler(self.tasks, self.history, synchronous=True, bus=bus)
        self.frame_clock = np.zeros(1, dtype=np.int64)  # the frame number voices are stepped at
        self.part_log: np.ndarray | None = None  # offline: what every voice's part played, per frame
        self.frame_log: np.ndarray | None = None  # offline: the analysis frame each part_log row was played at
        for alternatives in self._alternatives:
            for voice in alternatives.values():
                if hasattr(voice, "attach"):  # a voice whose part may read the control bus
                    voice.attach(bus, self.tasks, self.frame_clock)
        self.params = MixerParams(n_voices, arrays["mixer_voices"], arrays["mixer_master"])
        self._used_voices = np.zeros_like(self.params.voices)  # this block's snapshot of params
        self._used_master = np.zeros_like(self.params.master)
        self._changes = np.zeros((4 * n_voices + 2, 3))
        self._records = np.zeros((4 * n_voices + 2, 4))
        self.automation = SampleRing(arrays["automation"], arrays["automation_indices"])
        self.meters = SampleRing(arrays["meters"], arrays["meter_indices"])
        self._levels = np.zeros((n_voices + 3, 2))
        self._level_record = self._levels.reshape(1, -1)
        self._voice_levels = self._levels[:n_voices]
        self._bus_levels = self._levels[n_voices:]
        self.voice_f0 = arrays["voice_f0"]
        self.groups = VoiceGroups(self._alternatives, self.voice_out, self.voice_f0, batched)
        self.samples_done = 0
        self.faulted = arrays["voice_faulted"][:n_voices]
        self._fault_seen = np.zeros(n_voices, dtype=np.int64)
        self.fault_count = 0
        self.voice_exceptions = 0
        self._fault_pending = False
        self._current_gains = np.zeros((n_voices, 3))  # left, right, mono (the reverb send)
        self._target_gains = np.zeros((n_voices, 3))
        self._sends = np.array([voice.reverb_send for _, voice in config.voices[:n_voices]] + [0.0] * (n_voices - len(config.voices)))
        self.reverb = Reverb(self.sample_rate_hz, config.synth.reverb_decay_s, 1.0, REVERB_SEED)
        self._with_reverb = config.synth.reverb
        self._reverb_state = self.reverb.kernel_state
        self._premix = np.zeros((MAX_BLOCK_SAMPLES, 2))
        self._send_bus = np.zeros(MAX_BLOCK_SAMPLES)
        self._current_master = np.zeros(2)
        self._limiter_gain = np.ones(1)
        self._ceiling = db_to_gain(config.mixer.limiter_ceiling_db)
        self._max_step = 1.0 / (FULL_SCALE_SLEW_S * self.sample_rate_hz)
        self._release_coef = float(np.exp(-1.0 / (LIMITER_RELEASE_S * self.sample_rate_hz)))
        self._panic_requested = False
        self._panic_reset_left = 0
        self.echo = self._build_echo_canceller()
        self._analysis_input = np.zeros(MAX_BLOCK_SAMPLES, dtype=np.float32)
        self._calibration_rng = rng_state(0)
        self._calibration_left = 0
        self._calibration_rms = 10.0 ** (config.echo.calibration_db / 20.0)
        self.warm_up()

    def _build_alternatives(self, voices: list[Voice] | None) -> list[dict[int, Voice]]:
        """Per voice slot, kind index -> a built voice: every configured kind, or only the
        voices the caller passes (tests), each under its configured kind."""
        if voices is not None:
            return [{self.kinds.index(config_voice.kind): voice}
                    for (_, config_voice), voice in zip(self.config.voices, voices)]
        return [
            {k: build_voice(name, dataclasses.replace(voice, kind=kind), self.config)
             for k, kind in enumerate(self.kinds)}
            for name, voice in self.config.voices
        ]

    @property
    def tempo_key(self) -> TempoKey | None:
        """The tempo, beat and key estimate in force now, if any."""
        current = self.scheduler.bus.current(TEMPO_KEY_TASK)
        return None if current is None else TempoKeyTask.decode(*current)

    def _build_echo_canceller(self) -> EchoCanceller | None:
        echo = self.config.echo
        if not echo.active:
            return None
        if echo.bulk_delay_samples < self.config.engine.block_samples:
            raise TuttiError(
                f"echo.bulk_delay_samples = {echo.bulk_delay_samples} is below the block size "
                f"{self.config.engine.block_samples}: a real round trip is at least one block; "
                "measure it again or set echo.enabled = false"
            )
        return EchoCanceller(self.sample_rate_hz, echo.bulk_delay_samples, echo.taps, echo.step)

    def apply_config_mixer(self) -> None:
        """Publish the config's gains, pans, mutes and solos (as any thread may)."""
        for index, (_, voice) in enumerate(self.config.voices[: len(self.voices)]):
            self.params.voices[index, GAIN] = db_to_gain(voice.gain_db)
            self.params.voices[index, PAN] = voice.pan
            self.params.voices[index, MUTE] = float(voice.mute)
            self.params.voices[index, SOLO] = float(voice.solo)
        self.params.master[MASTER_GAIN] = db_to_gain(self.config.mixer.master_gain_db)
        self.params.master[INPUT_MONITOR] = db_to_gain(self.config.mixer.input_monitor_db)

    def warm_up(self) -> None:
        """Compile and exercise every kernel and every alternative voice once, then return to
        the initial state."""
        silence = np.zeros(self.frame_samples * 2 + 7, dtype=np.float32)
        for alternatives in self._alternatives:
            for voice in alternatives.values():
                voice.step(self.frame)
                voice.render(self._analysis_input, 0, 16)
        self.reset()
        self.process(silence)
        self.reset()

    def reset(self) -> None:
        """Clear analysis, voice and mixer state (the start of a take): every slot plays its
        configured kind again."""
        self.analyzer.reset()
        if self.echo is not None:
            self.echo.reset()
            self._calibration_rng[:] = rng_state(0)
            self._calibration_left = round(self.config.echo.calibration_s * self.sample_rate_hz)
            # The burst's echo arrives a round trip later and rings for the room's length.
            if self._calibration_left:
                self.echo.calibrate(self._calibration_left + self.echo.bulk_delay_samples + self.echo.taps)
        for index, (alternatives, (_, voice)) in enumerate(zip(self._alternatives, self.config.voices)):
            kind = self.kinds.index(voice.kind)
            self.voices[index] = alternatives[kind]
            self.voice_kind[index] = kind
            self._fades[index].reset()
            for alternative in alternatives.values():
                alternative.reset()
        self.frame[:] = 0.0
        self.frame_index = 0
        self.frame_clock[0] = 0
        self.history.reset()
        self.scheduler.reset()
        self.faulted[:] = 0
        self._fault_seen[:] = 0
        self.fault_count = 0
        self.voice_exceptions = 0
        self._fault_pending = False
        self._panic_requested = False
        self._panic_reset_left = 0
        self._limiter_gain[0] = 1.0
        self.groups.activate(self.voices, self.faulted)
        self.reverb.reset()
        self.apply_config_mixer()
        self._used_voices[:] = self.params.voices
        self._used_master[:] = self.params.master
        self._current_master[:] = self.params.master
        self._init_gains()
        self.samples_done = 0
        self.automation.clear()
        self.meters.clear()
        self.voice_f0[:] = 0.0

    def _init_gains(self) -> None:
        """Start at the published levels rather than fading in from silence."""
        for v in range(len(self.voices)):
            left, right = pan_gains(self.params.voices[v, PAN])
            gain = self.params.voices[v, GAIN] if self.params.voices[v, MUTE] < 0.5 else 0.0
            self._current_gains[v, 0] = gain * left
            self._current_gains[v, 1] = gain * right
            self._current_gains[v, 2] = gain

    def swap_voice(self, index: int, kind: str) -> None:
        """Voice `index` plays `kind` from now on, through a 50 ms equal-power crossfade.

        Audio thread (the engine reads it from the command ring) or offline: the new voice was
        built and warmed with the processor; this only resets it and points references. It
        takes its first targets at the next control frame, with every other voice (a model
        voice's decoder steps in its group's batch, once per frame).
        """
        if kind not in self.kinds or self.kinds.index(kind) not in self._alternatives[index]:
            raise TuttiError(
                f"voice kind {kind!r} is not loaded: the configured kinds are {', '.join(self.kinds)}; "
                "name it in the config (voices.NAME.kind) to swap to it live"
            )
        self.swap_voice_to(index, self.kinds.index(kind))

    def swap_voice_to(self, index: int, kind_index: int) -> None:
        """`swap_voice` by kind index (the command ring's form); an unknown index does nothing."""
        if not 0 <= index < len(self._alternatives):
            return
        alternatives = self._alternatives[index]
        if kind_index not in alternatives or kind_index == self.voice_kind[index]:
            return
        fade = self._fades[index]
        current = self.voices[index]
        if current is fade:
            current = fade.new
        new = alternatives[kind_index]
        new.reset()
        fade.begin(current, new)
        self.voices[index] = fade
        self.groups.activate(self.voices, self.faulted)
        self.voice_kind[index] = kind_index
        self._log_event(SWAP_ROW, index, kind_index)

    def request_panic(self) -> None:
        """Fade everything out within a few ms, mute it and reset the voices (any thread)."""
        self._panic_requested = True

    def _log_event(self, row: float, column: float, value: float) -> None:
        """Queue one automation record at the current sample (dropped and counted when full)."""
        record = self._records[:1]
        record[0, 0], record[0, 1], record[0, 2], record[0, 3] = self.samples_done, row, column, value
        self.automation.write(record, 1)

    def _panic(self) -> None:
        self._panic_requested = False
        self._log_event(PANIC_ROW, 0.0, 0.0)
        self.params.voices[:, MUTE] = 1.0
        self._panic_reset_left = round(PANIC_RAMP_S * self.sample_rate_hz)

    def _fault(self, index: int) -> None:
        """A voice that raised is silenced from here on and counted; the others play on."""
        self.voice_exceptions += 1
        self.faulted[index] = 1
        self._fault_pending = True
        self.groups.activate(self.voices, self.faulted)

    def process(self, block: np.ndarray, count: int = -1) -> int:
        """Process the first `count` samples of `block` (all of it by default); returns count."""
        if count < 0:
            count = block.shape[0]
        if self._panic_requested:
            self._panic()
        voice_out = self.voice_out
        voice_out[:, :count] = 0.0
        analyzer = self.analyzer
        echo = self.echo
        analysis_input = block if echo is None else self._analysis_input
        voices, rows, faulted, grouped = self.voices, self._rows, self.faulted, self.groups.grouped
        hop = self.frame_samples
        position = 0
        while position < count:
            take = min(count - position, hop - analyzer.pending)
            if echo is not None:
                echo.process(block, position, take, analysis_input)
            framed = analyzer.push_frame(analysis_input, position, take, self.frame)
            self.groups.render(position, take)
            for v in range(len(voices)):
                if not faulted[v] and not grouped[v]:
                    try:
                        voices[v].render(rows[v], position, take)
                    except Exception:  # noqa: BLE001 (a broken voice must not stop the stream)
                        self._fault(v)
            position += take
            if framed:  # the voices rendered up to the frame edge; now they take the new frame
                self.history.append(self.frame)
                self.frame_index += 1
                self.scheduler.on_frame(self.frame_index)
                self.frame_clock[0] = self.frame_index
                self._step_voices()
        slew = self._max_step
        if self._panic_reset_left:
            slew *= PANIC_SLEW_FACTOR
        changed, new_faults = mix_block(
            voice_out, block, count, self.params.voices, self.params.master, self._used_voices,
            self._used_master, self._changes, self._sends, self.faulted, self._current_gains,
            self._target_gains, self._current_master, self._limiter_gain, self._ceiling, slew,
            self._release_coef, self._premix, self._send_bus, self._with_reverb, self._reverb_state,
            self._voice_levels, self._bus_levels, self.mix_out,
        )
        if changed:  # the parameters this block used, logged at its first sample
            records = self._records[:changed]
            records[:, 0] = self.samples_done
            records[:, 1:] = self._changes[:changed]
            self.automation.write(records, changed)
        self.meters.write(self._level_record, 1)  # a display that fell behind loses old records
        if new_faults or self._fault_pending:
            self._handle_faults()
        if self._panic_reset_left:
            self._panic_reset_left = max(0, self._panic_reset_left - count)
            if not self._panic_reset_left:
                for voice in voices:
                    voice.reset()
        if echo is not None:
            if self._calibration_left:
                self._calibration_left = add_calibration_noise(
                    self.mix_out, count, self._calibration_rng, self._calibration_rms, self._calibration_left
                )
            echo.push_reference(self.mix_out, count)
        self.samples_done += count
        return count

    def _step_voices(self) -> None:
        """One control frame for every playing voice; a finished crossfade hands over to its new voice."""
        voices, faulted, fades, groups = self.voices, self.faulted, self._fades, self.groups
        for v in range(len(voices)):
            voice = voices[v]
            if voice is fades[v] and voice.finished:
                voices[v] = voice.new
                groups.activate(voices, faulted)
        try:
            groups.step(self.frame, self.frame_index)
        except Exception:  # noqa: BLE001 (a plan that cannot be read silences its voices, not the stream)
            self._fault_grouped()
        grouped = groups.grouped
        for v in range(len(voices)):
            voice = voices[v]
            if not faulted[v] and not grouped[v]:
                try:
                    voice.step(self.frame)
                    self.voice_f0[v] = getattr(voice, "sounding_f0_hz", 0.0)
                except Exception:  # noqa: BLE001 (a broken voice must not stop the stream)
                    self._fault(v)
        try:
            groups.finish_step()
        except Exception:  # noqa: BLE001 (a model that fails silences its voices, not the stream)
            self._fault_grouped()
        log = self.part_log
        if log is not None and self.frame_index <= len(log):
            self._log_parts(log[self.frame_index - 1])

    def _fault_grouped(self) -> None:
        """A group's call raised: every voice it plays is silenced and counted."""
        for v in range(len(self.voices)):
            if self.groups.grouped[v]:
                self._fault(v)

    def log_parts(self, n_frames: int) -> None:
        """Offline: keep, for the next `n_frames` frames, each voice's part frame and the leader's
        analysis (`part_log` [n, voices, 4, MAX_NOTES], `frame_log` [n, 16]); never live."""
        self.part_log = np.zeros((n_frames, len(self.voices), PART_ROWS, MAX_NOTES))
        self.frame_log = np.zeros((n_frames, N_FEATURES))

    def _log_parts(self, row: np.ndarray) -> None:
        self.frame_log[self.frame_index - 1] = self.frame
        for v, voice in enumerate(self.voices):
            part = getattr(getattr(voice, "new", voice), "part_frame", None)  # a crossfade logs the voice it fades to
            if part is not None:
                row[v] = part

    def _handle_faults(self) -> None:
        """Reset each newly faulted voice once; it stays muted and is counted."""
        self._fault_pending = False
        for index in range(len(self.voices)):
            if self.faulted[index] and not self._fault_seen[index]:
                self._fault_seen[index] = 1
                self.fault_count += 1
                try:
                    self.voices[index].reset()
                except Exception:  # noqa: BLE001
                    pass

    def apply_automation(self, record: np.ndarray) -> None:
        """Replay one automation record (sample, row, column, value) as a live take received it."""
        _, row, column, value = record
        if row >= 0:
            self.params.voices[int(row), int(column)] = value
        elif row == MASTER_ROW:
            self.params.master[int(column)] = value
        elif row == SWAP_ROW:
            self.swap_voice_to(int(column), int(value))
        elif row == PANIC_ROW:
            self.request_panic()

    def render(
        self, audio: np.ndarray, block_samples: int, block_times_us: list[float] | None = None,
        automation: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offline: run a whole signal through in blocks; returns (voices [V, n], mix [n, 2]).

        With `block_times_us`, each block's processing time is appended to it. `automation`
        ([k, 4] records from a live take's session.json) is replayed at its samples: a block is
        cut where a record falls, so a fader, mute, swap or panic takes effect exactly where it
        did live (the output does not depend on where blocks are cut).
        """
        check_block_samples(block_samples)
        n = audio.shape[0]
        voices = np.zeros((len(self.voices), n), dtype=np.float32)
        mix = np.zeros((n, 2), dtype=np.float32)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        events = np.zeros((0, 4)) if automation is None else automation[np.argsort(automation[:, 0], kind="stable")]
        next_event = 0
        start = 0
        while start < n:
            while next_event < len(events) and events[next_event, 0] <= start:
                self.apply_automation(events[next_event])
                next_event += 1
            end = min(start + block_samples, n)
            if next_event < len(events):
                end = min(end, int(events[next_event, 0]))
            began = time.perf_counter()
            count = self.process(audio[start:end])
            if block_times_us is not None:
                block_times_us.append((time.perf_counter() - began) * 1e6)
            voices[:, start:start + count] = self.voice_out[:, :count]
            mix[start:start + count] = self.mix_out[:count]
            start += count
        return voices, mix
