"""`launch.py eval instruments`: held-out quality in musical units, against the baselines.

For every held-out monophonic stem of each instrument the model knows, the engine's cached
causal features (what the voice hears live) drive the decoder; the torch synth (parity-tested
against engine/synth) renders at the training rate; the engine's own analysis re-extracts f0
and loudness from the rendering. Metrics (DESIGN.md section 5):
- f0: |cents| between re-extracted and input f0 on frames where the input is voiced: median,
  and the share within 20 cents (a frame the rendering leaves unvoiced counts as a miss);
- loudness: mean |dB| difference on frames whose input loudness is above -60 dB;
- spectral distance: the multi-scale spectral loss between rendering and the stem's audio.
The re-analysis sees the rendering one analysis delay later than the input saw the stem, so
re-extracted frames are compared `lag` frames later, the lag (0..12 frames) that best aligns
the loudness curves. The same is done for a sine voice and a mean-spectrum voice
(training/voice/baselines.py). Drums report loudness and spectral distance only.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import TuttiError
from engine.features.streaming import StreamingAnalyzer
from engine.rates import frame_samples
from engine.safe_files import atomic_path, atomic_write_text, claim_output_file
from training.voice.baselines import MeanSpectrum, sine_controls
from training.voice.dataset import StemData, load_split
from training.voice.decoder import Decoder
from training.voice.loss import multiscale_spectral_loss
from training.voice.synth import TorchSynth, white_noise
from training.voice.train import load_decoder

REPORT_KIND = "tutti-voice-eval"
SIGNATURE = b'{\n "kind": "tutti-voice-eval"'
ACTIVE_DB = -60.0
WITHIN_CENTS = 20.0
MAX_LAG_FRAMES = 12
SYSTEMS = ("model", "sine", "mean_spectrum")


def _lag(reference: np.ndarray, delayed: np.ndarray) -> int:
    """The delay in frames (0..MAX_LAG_FRAMES) that best aligns two loudness curves."""
    errors = [np.mean(np.abs(delayed[lag:] - reference[: len(reference) - lag])) for lag in range(MAX_LAG_FRAMES + 1)]
    return int(np.argmin(errors))


def frame_metrics(stem: StemData, rendered: np.ndarray, analyzer: StreamingAnalyzer, pitched: bool) -> dict[str, Any]:
    """Sums and counts for one rendering of one stem (combined over stems by `_combine`)."""
    values = analyzer.analyze(rendered).values
    n = min(len(values), len(stem.f0_hz))
    loud_in, f0_in = stem.loudness_db[:n].astype(np.float64), stem.f0_hz[:n].astype(np.float64)
    loud_out = values[:n, 2]
    lag = _lag(loud_in, loud_out)
    loud_out, f0_out, voicing_out = loud_out[lag:], values[lag:n, 0], values[lag:n, 1]
    loud_in, f0_in = loud_in[: n - lag], f0_in[: n - lag]
    active = loud_in > ACTIVE_DB
    result: dict[str, Any] = {
        "lag_frames": lag, "loud_abs_sum": float(np.abs(loud_out - loud_in)[active].sum()), "loud_frames": int(active.sum()),
    }
    if pitched:
        voiced = f0_in > 0
        error = np.full(voiced.sum(), np.inf)
        heard = voicing_out[voiced] >= 0.5
        error[heard] = np.abs(1200.0 * np.log2(f0_out[voiced][heard] / f0_in[voiced][heard]))
        result |= {"cents": error.tolist(), "voiced_frames": int(voiced.sum())}
    return result


def _combine(parts: list[dict[str, Any]], distances: list[tuple[float, int]], pitched: bool) -> dict[str, Any]:
    loud_frames = sum(p["loud_frames"] for p in parts)
    out: dict[str, Any] = {
        "loudness_error_db": sum(p["loud_abs_sum"] for p in parts) / max(loud_frames, 1),
        "spectral_distance": sum(d * w for d, w in distances) / max(sum(w for _, w in distances), 1),
        "lag_frames": [p["lag_frames"] for p in parts],
    }
    if pitched:
        cents = np.concatenate([np.array(p["cents"]) for p in parts]) if parts else np.zeros(0)
        out |= {"f0_within_20_cents": float(np.mean(cents <= WITHIN_CENTS)) if len(cents) else math.nan,
                "f0_median_abs_cents": float(np.median(cents)) if len(cents) else math.nan, "voiced_frames": int(len(cents))}
    return out


def render_controls(synth: TorchSynth, f0_hz: np.ndarray, amplitudes: np.ndarray, noise: np.ndarray, seed: int) -> np.ndarray:
    f0 = torch.from_numpy(np.ascontiguousarray(f0_hz, dtype=np.float32))[None]
    white = white_noise((1, len(f0_hz) * synth.frame_samples), torch.Generator().manual_seed(seed))
    with torch.no_grad():
        audio = synth(f0, torch.from_numpy(np.ascontiguousarray(amplitudes, dtype=np.float32))[None],
                      torch.from_numpy(np.ascontiguousarray(noise, dtype=np.float32))[None], white)
    return audio[0].numpy()


def model_controls(model: Decoder, stem: StemData, instrument: int) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        amps, noise, _ = model(torch.from_numpy(stem.f0_hz)[None], torch.from_numpy(stem.loudness_db)[None],
                               torch.tensor([instrument]), model.initial_state(1))
    return amps[0].numpy(), noise[0].numpy()


def _trim(stem: StemData, max_seconds: float, hop: int) -> StemData:
    frames = min(len(stem.f0_hz), int(max_seconds * 250))
    return StemData(stem.song_id, stem.stem, stem.instrument, stem.f0_hz[:frames], stem.loudness_db[:frames],
                    stem.audio[: frames * hop])


def _spectrogram_png(path: Path, target: np.ndarray, rendered: dict[str, np.ndarray], sample_rate_hz: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [("target (held-out stem)", target)] + [(name, audio) for name, audio in rendered.items()]
    figure, axes = plt.subplots(len(rows), 1, figsize=(9, 2.2 * len(rows)), sharex=True)
    for axis, (name, audio) in zip(axes, rows):
        axis.specgram(audio + 1e-9, NFFT=1024, Fs=sample_rate_hz, noverlap=768, cmap="magma", vmin=-120)
        axis.set_ylabel("Hz")
        axis.set_title(name, fontsize=9)
    axes[-1].set_xlabel("s")
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80)
    plt.close(figure)


def evaluate_instrument(
    model: Decoder, index: int, held_out: list[StemData], training: list[StemData], *,
    plot: Path | None = None, plot_seconds: float = 8.0, title: str = "",
) -> dict[str, Any]:
    """Metrics of the model (instrument row `index`) and both baselines on `held_out` stems."""
    config = model.config
    rate = config.sample_rate_hz
    hop = frame_samples(rate)
    synth = TorchSynth(rate, hop, config.n_noise_bands)
    analyzer = StreamingAnalyzer(rate)
    mean = MeanSpectrum(training, rate, config.n_harmonics, config.n_noise_bands)
    pitched = config.instruments[index] != "drums"
    parts: dict[str, list] = {name: [] for name in SYSTEMS}
    distances: dict[str, list] = {name: [] for name in SYSTEMS}
    for number, stem in enumerate(held_out):
        controls = {
            "model": model_controls(model, stem, index),
            "sine": sine_controls(stem.f0_hz, stem.loudness_db, config.n_harmonics, config.n_noise_bands),
            "mean_spectrum": mean.controls(stem.loudness_db),
        }
        rendered = {name: render_controls(synth, stem.f0_hz, *c, seed=number) for name, c in controls.items()}
        target = torch.from_numpy(stem.audio)[None]
        for name, audio in rendered.items():
            parts[name].append(frame_metrics(stem, audio, analyzer, pitched))
            distance = float(multiscale_spectral_loss(torch.from_numpy(audio)[None], target)[0])
            distances[name].append((distance, len(stem.f0_hz)))
        if plot is not None and number == 0:
            span = int(plot_seconds * rate)
            start = int(np.argmax(stem.loudness_db > ACTIVE_DB)) * hop
            _spectrogram_png(plot, stem.audio[start : start + span],
                             {name: a[start : start + span] for name, a in rendered.items()}, rate,
                             f"{title}: {stem.song_id} {stem.stem}")
    row: dict[str, Any] = {"stems": len(held_out), "seconds": sum(len(s.f0_hz) for s in held_out) / 250.0}
    for name in SYSTEMS:
        row[name] = _combine(parts[name], distances[name], pitched)
    best_baseline = min(row[name]["spectral_distance"] for name in ("sine", "mean_spectrum"))
    row["spectral_vs_mean_spectrum"] = row["model"]["spectral_distance"] / row["mean_spectrum"]["spectral_distance"]
    row["beats_baselines"] = bool(row["model"]["spectral_distance"] < best_baseline)
    return row


def evaluate(
    model: Decoder, cache_dir: Path, split: str, max_seconds: float, plot_dir: Path | None = None, plot_seconds: float = 8.0,
) -> dict[str, Any]:
    """Per instrument: metrics of the model and both baselines on `split`; {} rows for no data."""
    config = model.config
    rate = config.sample_rate_hz
    hop = frame_samples(rate)
    voices: dict[str, Any] = {}
    for index, instrument in enumerate(config.instruments):
        held_out = [_trim(s, max_seconds, hop) for s in load_split(cache_dir, (instrument,), split, rate)]
        held_out = [s for s in held_out if np.any(s.loudness_db > ACTIVE_DB)]
        if not held_out:
            voices[instrument] = {"stems": 0, "note": f"no monophonic {instrument} stem in the {split} split"}
            continue
        training = load_split(cache_dir, (instrument,), "train", rate)
        plot = plot_dir / f"{instrument}.png" if plot_dir is not None else None
        voices[instrument] = evaluate_instrument(model, index, held_out, training, plot=plot, plot_seconds=plot_seconds,
                                                 title=f"{instrument} ({split})")
    return voices


def _csv(voices: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["voice", "system", "stems", "seconds", "spectral_distance", "loudness_error_db", "f0_within_20_cents", "f0_median_abs_cents"])
    for voice, row in voices.items():
        for name in SYSTEMS:
            if name in row:
                m = row[name]
                writer.writerow([voice, name, row["stems"], f"{row['seconds']:.1f}", f"{m['spectral_distance']:.4f}",
                                 f"{m['loudness_error_db']:.3f}", f"{m.get('f0_within_20_cents', float('nan')):.4f}",
                                 f"{m.get('f0_median_abs_cents', float('nan')):.2f}"])
    return buffer.getvalue()


def evaluate_run(run_dir: Path, cache_dir: Path, out: Path, *, split: str = "test", max_seconds: float = 60.0, force: bool = False) -> dict[str, Any]:
    """Evaluate the best checkpoint of `run_dir`; writes out (JSON), out.csv and PNGs beside it."""
    out = Path(out)
    if out.suffix != ".json":
        raise TuttiError(f"--out {out} must end in .json (the CSV and plots go beside it)")
    claim_output_file(out, force=force, command="eval", signature=SIGNATURE)
    best = Path(run_dir) / "best.pt"
    model, config, saved = load_decoder(best if best.is_file() else Path(run_dir) / "last.pt")
    plot_dir = out.with_name(out.stem + "_plots")
    plot_dir.mkdir(parents=True, exist_ok=True)
    voices = evaluate(model, Path(cache_dir), split, max_seconds, plot_dir)
    report = {"kind": REPORT_KIND, "split": split, "max_seconds_per_stem": max_seconds, "run_dir": str(run_dir),
              "checkpoint_step": int(saved.get("step", 0)), "instruments": list(config.decoder.instruments), "voices": voices}
    atomic_write_text(out.with_suffix(".csv"), _csv(voices))
    atomic_write_text(out, json.dumps(report, indent=1, default=float) + "\n")
    for voice, row in voices.items():
        if row.get("stems"):
            m, s, b = row["model"], row["sine"], row["mean_spectrum"]
            f0 = f", f0 within 20 cents {m['f0_within_20_cents']:.1%}" if "f0_within_20_cents" in m else ""
            print(f"{voice}: spectral {m['spectral_distance']:.3f} (sine {s['spectral_distance']:.3f}, mean-spectrum "
                  f"{b['spectral_distance']:.3f}), loudness error {m['loudness_error_db']:.2f} dB{f0}")
        else:
            print(f"{voice}: {row['note']}")
    return report
