"""The offline commands: analyse a file to CSV, and perform a file through the ensemble.

Both resample any input to the engine rate, mono-mix it, and write their outputs through
engine.safe_files: every file atomically, `--force` replacing only what Tutti wrote.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np

from engine.audio_io import read_mono, write_float_wav
from engine.config import TuttiConfig, config_to_dict, config_to_toml
from engine.safe_files import (
    atomic_path, atomic_write_bytes, atomic_write_text, claim_output_dir, claim_output_file, release_output_dir,
)
from engine.features.frames import F0, FEATURE_VERSION, LOUDNESS, ONSET, VOICING
from engine.features.latency import measure_pitch_settle_ms
from engine.features.streaming import StreamingAnalyzer
from engine.latency import measure_onset_latency_samples
from engine.rates import CONTROL_RATE_HZ, frame_samples
from engine.voices.factory import part_labels

CSV_HEADER = "time_s,f0_hz,voicing,loudness_db,onset\n"
CONFIG_HEADER = "# Tutti: the resolved config of an analysis\n"


def analyze_file(input_path: Path, out_csv: Path, config: TuttiConfig, force: bool = False) -> int:
    """Write one CSV row per 4 ms frame: time_s, f0_hz, voicing, loudness_db, onset.

    time_s is the time of the frame's last input sample; f0_hz is 0 on unvoiced frames. The
    resolved config goes beside it (FEATURES.config.toml).
    An existing output is replaced only with `force`, and only if Tutti wrote it.
    Returns the number of frames written.
    """
    sample_rate_hz = config.engine.sample_rate_hz
    audio = read_mono(input_path, sample_rate_hz)
    out_csv = Path(out_csv)
    out_config = out_csv.with_suffix(".config.toml")
    for path, signature in ((out_csv, CSV_HEADER), (out_config, CONFIG_HEADER)):
        claim_output_file(path, force=force, command="analyze", signature=signature.encode())
    analyzer = StreamingAnalyzer(
        sample_rate_hz, f0_min_hz=config.analysis.f0_min_hz, f0_max_hz=config.analysis.f0_max_hz
    )
    frames = analyzer.analyze(audio, block_samples=config.engine.block_samples)
    values = frames.values
    voiced = values[:, VOICING] >= config.analysis.voicing_threshold
    table = np.column_stack([
        frames.times_s,
        np.where(voiced, values[:, F0], 0.0),
        values[:, VOICING],
        values[:, LOUDNESS],
        values[:, ONSET],
    ])
    with atomic_path(out_csv) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(CSV_HEADER)
            np.savetxt(handle, table, fmt=["%.6f", "%.3f", "%.4f", "%.3f", "%.6f"], delimiter=",")
    atomic_write_text(out_config, CONFIG_HEADER + config_to_toml(config))
    return len(table)


FOLLOWERS_NAME, ROLL_NAME = "followers.npz", "roll.png"  # written when voices play the conductor's roles


def performance_names(voice_names) -> list[str]:
    """The files `perform` and `live --record` write in their folder."""
    return ["input.wav", "mix.wav", *(f"{name}.wav" for name in voice_names), "config.toml", "session.json",
            FOLLOWERS_NAME, ROLL_NAME]


def prepare_output_dir(out_dir: Path, force: bool, voice_names=()) -> None:
    """Claim a recording folder for `live --record` (engine.safe_files.claim_output_dir)."""
    claim_output_dir(out_dir, force=force, command="live --record", names=performance_names(voice_names))


def perform_file(
    input_path: Path, out_dir: Path, config: TuttiConfig, force: bool = False, mode: str = "offline",
    automation_path: Path | None = None,
) -> dict:
    """Render `input_path` through the ensemble into `out_dir`; returns the session record.

    Writes input.wav, mix.wav (stereo), one <voice>.wav per voice (mono, pre-fader), all 48 kHz
    (the engine rate) float32 and the same length, config.toml and session.json.
    `automation_path`: a live take's session.json whose automation log is replayed.
    """
    from engine.automation import read_automation
    from engine.processor import BlockProcessor, configured_kinds

    out_dir = Path(out_dir)
    audio = read_mono(input_path, config.engine.sample_rate_hz)
    automation = None
    if automation_path is not None:
        automation = read_automation(automation_path, config.voice_names, configured_kinds(config))
    processor = BlockProcessor(config)
    claim_output_dir(out_dir, force=force, command="perform", names=performance_names(processor.voice_names))
    try:
        return _perform_into(out_dir, input_path, audio, processor, config, mode, automation)
    except BaseException:
        release_output_dir(out_dir)  # a claim that wrote nothing leaves no folder behind
        raise


def _perform_into(out_dir: Path, input_path: Path, audio: np.ndarray, processor, config: TuttiConfig, mode: str,
                  automation: np.ndarray | None = None) -> dict:
    sample_rate_hz = config.engine.sample_rate_hz
    block_samples = config.engine.block_samples
    n = audio.shape[0]
    block_us: list[float] = []
    with_roles = any(voice.role for _, voice in config.voices)
    if with_roles:
        processor.log_parts(n // processor.frame_samples)
    started = time.perf_counter()
    voices, mix = processor.render(audio, block_samples, block_us, automation)
    wall_s = time.perf_counter() - started
    block_s = block_samples / sample_rate_hz
    session = {
        "mode": mode,
        "input": str(Path(input_path).resolve()),
        "sample_rate_hz": sample_rate_hz,
        "block_samples": block_samples,
        "control_rate_hz": CONTROL_RATE_HZ,
        "frame_samples": frame_samples(sample_rate_hz),
        "feature_version": FEATURE_VERSION,
        "duration_s": n / sample_rate_hz,
        "voices": list(processor.voice_names),
        "parts": part_labels(config),
        "voice_faults": processor.fault_count,
        "timings": {
            "wall_s": wall_s,
            "realtime_factor": (n / sample_rate_hz) / wall_s,
            "block_us_p50": float(np.percentile(block_us, 50)),
            "block_us_p99": float(np.percentile(block_us, 99)),
            "block_us_max": float(np.max(block_us)),
            "block_load_p99": float(np.percentile(block_us, 99)) / (block_s * 1e6),
        },
        "latency_ms": {
            "onset": measure_onset_latency_samples(config) * 1000.0 / sample_rate_hz,
            "pitch_settle_110hz": measure_pitch_settle_ms(sample_rate_hz, 110.0),
            "pitch_settle_440hz": measure_pitch_settle_ms(sample_rate_hz, 440.0),
        },
        "mix_peak_dbfs": float(20 * np.log10(max(np.max(np.abs(mix)), 1e-12))),
        "config": config_to_dict(config),
    }
    write_float_wav(out_dir / "input.wav", audio, sample_rate_hz)
    write_float_wav(out_dir / "mix.wav", mix, sample_rate_hz)
    for name, signal in zip(processor.voice_names, voices):
        write_float_wav(out_dir / f"{name}.wav", signal, sample_rate_hz)
    atomic_write_text(out_dir / "config.toml", config_to_toml(config))
    if with_roles:
        _write_followers(out_dir / FOLLOWERS_NAME, processor, config)
        session["followers"] = FOLLOWERS_NAME
    atomic_write_text(out_dir / "session.json", json.dumps(session, indent=2))
    return session


def _write_followers(path: Path, processor, config: TuttiConfig) -> None:
    """What each voice's part played per frame (f0 Hz, loudness dB, onset, active per note) and
    the leader's analysis, for plots and research (numpy .npz)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, parts=processor.part_log.astype(np.float32), leader=processor.frame_log.astype(np.float32),
                        voices=np.array(processor.voice_names), roles=np.array([voice.role for _, voice in config.voices]),
                        frame_s=np.array(1.0 / CONTROL_RATE_HZ))
    atomic_write_bytes(path, buffer.getvalue())
