"""The offline commands: analyse a file to CSV, and perform a file through the ensemble.

Both resample any input to the engine rate, mono-mix it, and write their outputs atomically:
nothing is left half-written over an existing output.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.audio_io import read_mono, write_float_wav
from engine.config import TuttiConfig, config_to_dict, config_to_toml
from engine.errors import TuttiError
from engine.features.frames import F0, FEATURE_VERSION, LOUDNESS, ONSET, VOICING
from engine.features.latency import measure_pitch_settle_ms
from engine.features.streaming import StreamingAnalyzer
from engine.latency import measure_onset_latency_samples
from engine.rates import CONTROL_RATE_HZ, frame_samples


def analyze_file(input_path: Path, out_csv: Path, config: TuttiConfig) -> int:
    """Write one CSV row per 4 ms frame: time_s, f0_hz, voicing, loudness_db, onset.

    time_s is the time of the frame's last input sample; f0_hz is 0 on unvoiced frames. The
    resolved config goes beside it (FEATURES.config.toml).
    Returns the number of frames written.
    """
    sample_rate_hz = config.engine.sample_rate_hz
    audio = read_mono(input_path, sample_rate_hz)
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
    out_csv = Path(out_csv)
    _check_parent(out_csv)
    with tempfile.NamedTemporaryFile("w", dir=out_csv.parent, suffix=".csv.tmp", delete=False) as tmp:
        tmp.write("time_s,f0_hz,voicing,loudness_db,onset\n")
        np.savetxt(tmp, table, fmt=["%.6f", "%.3f", "%.4f", "%.3f", "%.6f"], delimiter=",")
    os.replace(tmp.name, out_csv)
    out_csv.with_suffix(".config.toml").write_text(config_to_toml(config), encoding="utf-8")
    return len(table)


def _check_parent(path: Path) -> None:
    """Create the folder that will hold `path`, or say why it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TuttiError(f"cannot create output folder {path.parent} ({err.strerror}): pick another --out") from None
    if not os.access(path.parent, os.W_OK):
        raise TuttiError(f"output folder {path.parent} is not writable: pick another --out")


def prepare_output_dir(out_dir: Path, force: bool) -> None:
    """Refuse a non-empty output folder unless `force` (then it is replaced once all is written)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TuttiError(f"output {out_dir} exists and is not a folder: pick another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise TuttiError(f"output folder {out_dir} exists and is not empty: add --force to replace it")
    _check_parent(out_dir.resolve())


def publish_dir(staging: Path, out_dir: Path) -> None:
    """Move a fully written staging folder into place, replacing `out_dir`."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)


def perform_file(
    input_path: Path, out_dir: Path, config: TuttiConfig, force: bool = False, mode: str = "offline"
) -> dict:
    """Render `input_path` through the ensemble into `out_dir`; returns the session record.

    Writes input.wav, mix.wav (stereo), one <voice>.wav per voice (mono, pre-fader), all 48 kHz
    (the engine rate) float32 and the same length, config.toml and session.json.
    """
    from engine.processor import BlockProcessor

    out_dir = Path(out_dir)
    prepare_output_dir(out_dir, force)
    sample_rate_hz = config.engine.sample_rate_hz
    block_samples = config.engine.block_samples
    audio = read_mono(input_path, sample_rate_hz)
    processor = BlockProcessor(config)
    n = audio.shape[0]
    block_us: list[float] = []
    started = time.perf_counter()
    voices, mix = processor.render(audio, block_samples, block_us)
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
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.resolve().parent))
    try:
        write_float_wav(staging / "input.wav", audio, sample_rate_hz)
        write_float_wav(staging / "mix.wav", mix, sample_rate_hz)
        for name, signal in zip(processor.voice_names, voices):
            write_float_wav(staging / f"{name}.wav", signal, sample_rate_hz)
        (staging / "config.toml").write_text(config_to_toml(config), encoding="utf-8")
        (staging / "session.json").write_text(json.dumps(session, indent=2), encoding="utf-8")
        publish_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return session
