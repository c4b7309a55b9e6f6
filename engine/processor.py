"""The block processor shared by the live host and the offline commands.

It takes input blocks of any size (16..4096 samples), feeds the causal analysis, steps every
voice once per 4 ms control frame, renders the voices and mixes them. Blocks are split at
frame edges, so output sample n depends only on input up to n, whatever the block size: live
and offline runs agree sample for sample. After warm-up the per-block path allocates nothing.
"""

from __future__ import annotations

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
from engine.scheduling import FrameHistory, FrameScheduler
from engine.synth.rng import rng_state
from engine.tempo_key import TempoKeyTask
from engine.voices import Voice, build_voices
from engine.voices.crossfade import Crossfade

SWAP_FADE_S = 0.05


class BlockProcessor:
    """Analysis -> voices -> mix, one block at a time, into preallocated buffers.

    After `process(block)` returns n, `voice_out[:, :n]` holds each voice (mono, pre-fader)
    and `mix_out[:n]` the stereo mix. `frame` holds the latest analysis frame and
    `frame_index` counts frames since start.
    """

    def __init__(self, config: TuttiConfig, voices: list[Voice] | None = None) -> None:
        self.config = config
        self.sample_rate_hz = config.engine.sample_rate_hz
        self.frame_samples = frame_samples(self.sample_rate_hz)
        self.analyzer = StreamingAnalyzer(
            self.sample_rate_hz,
            f0_min_hz=config.analysis.f0_min_hz,
            f0_max_hz=config.analysis.f0_max_hz,
        )
        self.voices = build_voices(config) if voices is None else voices
        self.voice_names = tuple(voice.name for voice in self.voices)
        n_voices = len(self.voices)
        self.voice_out = np.zeros((n_voices, MAX_BLOCK_SAMPLES), dtype=np.float32)
        self.mix_out = np.zeros((MAX_BLOCK_SAMPLES, 2), dtype=np.float32)
        self._voice_rows = [(voice, self.voice_out[i]) for i, voice in enumerate(self.voices)]
        self.frame = np.zeros(N_FEATURES)
        self.frame_index = 0
        self.history = FrameHistory()
        self.tempo_key = TempoKeyTask()
        self.scheduler = FrameScheduler([self.tempo_key], self.history, synchronous=True)
        self.params = MixerParams(n_voices)
        self.faulted = np.zeros(n_voices, dtype=np.int64)
        self._fault_seen = np.zeros(n_voices, dtype=np.int64)
        self.fault_count = 0
        self._current_gains = np.zeros((n_voices, 2))
        self._current_master = np.zeros(2)
        self._limiter_gain = np.ones(1)
        self._ceiling = db_to_gain(config.mixer.limiter_ceiling_db)
        self._max_step = 1.0 / (FULL_SCALE_SLEW_S * self.sample_rate_hz)
        self._release_coef = float(np.exp(-1.0 / (LIMITER_RELEASE_S * self.sample_rate_hz)))
        self._panic_requested = False
        self.echo = self._build_echo_canceller()
        self._analysis_input = np.zeros(MAX_BLOCK_SAMPLES, dtype=np.float32)
        self._calibration_rng = rng_state(0)
        self._calibration_left = 0
        self._calibration_rms = 10.0 ** (config.echo.calibration_db / 20.0)
        self.apply_config_mixer()
        self.warm_up()

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
        """Compile and exercise every kernel once, then return to the initial state."""
        silence = np.zeros(self.frame_samples * 2 + 7, dtype=np.float32)
        self.process(silence)
        self.reset()

    def reset(self) -> None:
        """Clear analysis, voice and mixer state (the start of a take)."""
        self.analyzer.reset()
        if self.echo is not None:
            self.echo.reset()
            self._calibration_rng[:] = rng_state(0)
            self._calibration_left = round(self.config.echo.calibration_s * self.sample_rate_hz)
            # The burst's echo arrives a round trip later and rings for the room's length.
            if self._calibration_left:
                self.echo.calibrate(self._calibration_left + self.echo.bulk_delay_samples + self.echo.taps)
        for voice in self.voices:
            voice.reset()
        self.frame[:] = 0.0
        self.frame_index = 0
        self.history.reset()
        self.scheduler.reset()
        self.tempo_key.reset()
        self.faulted[:] = 0
        self._fault_seen[:] = 0
        self.fault_count = 0
        self._limiter_gain[0] = 1.0
        self.apply_config_mixer()
        self._current_master[:] = self.params.master
        self._init_gains()

    def _init_gains(self) -> None:
        """Start at the published levels rather than fading in from silence."""
        for v in range(len(self.voices)):
            left, right = pan_gains(self.params.voices[v, PAN])
            gain = self.params.voices[v, GAIN] if self.params.voices[v, MUTE] < 0.5 else 0.0
            self._current_gains[v, 0] = gain * left
            self._current_gains[v, 1] = gain * right

    def swap_voice(self, index: int, voice: Voice) -> None:
        """Replace voice `index` by `voice` (built and warmed off the audio thread) with a
        50 ms equal-power crossfade. Safe from any thread: one reference assignment each."""
        current = self.voices[index]
        if isinstance(current, Crossfade):
            current = current.new
        voice.step(self.frame.copy())  # start on the current frame, not from silence
        fade = Crossfade(current, voice, round(SWAP_FADE_S * self.sample_rate_hz))
        self._voice_rows[index] = (fade, self.voice_out[index])
        self.voices[index] = fade

    def request_panic(self) -> None:
        """Mute everything and reset the voices at the next block (safe from any thread)."""
        self._panic_requested = True

    def _panic(self) -> None:
        self._panic_requested = False
        self.params.voices[:, MUTE] = 1.0
        for voice in self.voices:
            voice.reset()

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
        hop = self.frame_samples
        position = 0
        while position < count:
            take = min(count - position, hop - analyzer.pending)
            if echo is not None:
                echo.process(block, position, take, analysis_input)
            analyzer.push(analysis_input, position, take)
            for voice, row in self._voice_rows:
                voice.render(row, position, take)
            position += take
            if analyzer.pending == hop:
                analyzer.compute_frame(self.frame)
                self.history.append(self.frame)
                self.frame_index += 1
                self.scheduler.on_frame(self.frame_index)
                for voice in self.voices:
                    voice.step(self.frame)
        new_faults = mix_block(
            voice_out, block, count, self.params.voices, self.params.master, self.faulted,
            self._current_gains, self._current_master, self._limiter_gain, self._ceiling,
            self._max_step, self._release_coef, self.mix_out,
        )
        if new_faults:
            self._handle_faults()
        if echo is not None:
            if self._calibration_left:
                self._calibration_left = add_calibration_noise(
                    self.mix_out, count, self._calibration_rng, self._calibration_rms, self._calibration_left
                )
            echo.push_reference(self.mix_out, count)
        return count

    def _handle_faults(self) -> None:
        """Reset each newly faulted voice once; it stays muted and is counted."""
        for index in range(len(self.voices)):
            if self.faulted[index] and not self._fault_seen[index]:
                self._fault_seen[index] = 1
                self.fault_count += 1
                self.voices[index].reset()

    def render(
        self, audio: np.ndarray, block_samples: int, block_times_us: list[float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offline: run a whole signal through in blocks; returns (voices [V, n], mix [n, 2]).

        With `block_times_us`, each block's processing time is appended to it.
        """
        check_block_samples(block_samples)
        n = audio.shape[0]
        voices = np.zeros((len(self.voices), n), dtype=np.float32)
        mix = np.zeros((n, 2), dtype=np.float32)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        for start in range(0, n, block_samples):
            began = time.perf_counter()
            count = self.process(audio[start:start + block_samples])
            if block_times_us is not None:
                block_times_us.append((time.perf_counter() - began) * 1e6)
            voices[:, start:start + count] = self.voice_out[:, :count]
            mix[start:start + count] = self.mix_out[:count]
        return voices, mix
