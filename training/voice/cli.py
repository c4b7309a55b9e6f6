"""`launch.py train-instrument`, `export` and `eval instruments`: the argparse side of
training/voice. Building the parsers imports only the standard library and engine.errors, so
launch.py registers them on an install without torch; each command imports torch when run."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from engine.errors import TuttiError

ALL_VOICES = ("bass", "keys", "guitar", "strings", "winds", "drums")
CHECKPOINTS = Path("checkpoints")


def _instruments(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if not text:
        return default
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in ALL_VOICES]
    if unknown:
        raise TuttiError(f"--instruments {','.join(unknown)} unknown: use some of {','.join(ALL_VOICES)}")
    return names


def _is_cache(folder: Path) -> bool:
    return (folder / "manifest.jsonl").is_file()


def data_hash(stems) -> str:
    """sha256 over the training stems' ids and audio hashes: which data made a model."""
    digest = hashlib.sha256()
    for stem in sorted(stems, key=lambda s: (s.song_id, s.stem)):
        digest.update(f"{stem.song_id}/{stem.stem}:{len(stem.audio)}\0".encode())
        digest.update(hashlib.sha256(stem.audio.tobytes()).digest())
    return digest.hexdigest()


def _config(args: argparse.Namespace, instruments: tuple[str, ...]):
    from training.voice.config import OVERLAYS, VoiceRunConfig, apply_overrides, parse_set

    config = apply_overrides(VoiceRunConfig(), OVERLAYS[args.overlay])
    config = apply_overrides(config, {"decoder": {"instruments": list(instruments), "sample_rate_hz": args.sample_rate}})
    if args.minutes:
        config = apply_overrides(config, {"train": {"max_minutes": args.minutes}})
    return apply_overrides(config, parse_set(args.voice_set))


def _cmd_train(args: argparse.Namespace) -> None:
    import torch

    from training.voice.dataset import WindowSampler, load_folder, load_split
    from training.voice.train import train

    torch.set_num_threads(args.threads)
    stems_dir = args.stems
    if not stems_dir.is_dir():
        raise TuttiError(f"--stems {stems_dir} is not a folder: give a feature cache (corpus/features) or a folder of recordings")
    if _is_cache(stems_dir):
        instruments = _instruments(args.instruments, (args.name,) if args.name in ALL_VOICES else ALL_VOICES)
        config = _config(args, instruments)
        rate = config.decoder.sample_rate_hz
        train_stems = load_split(stems_dir, instruments, "train", rate)
        val_stems = load_split(stems_dir, instruments, "val", rate)
    else:
        instruments = (args.name,)
        config = _config(args, instruments)
        stems = load_folder(stems_dir, args.name, config.decoder.sample_rate_hz)
        train_stems, val_stems = stems[1:] or stems, stems[:1] if len(stems) > 1 else []
    if not train_stems:
        raise TuttiError(f"{stems_dir} has no monophonic stems of {', '.join(instruments)} in its train split")
    frames = int(round(config.train.window_s * 250))
    train_sampler = WindowSampler(train_stems, instruments, frames, config.decoder.sample_rate_hz)
    missing = [n for n in instruments if n not in train_sampler.instruments]
    if missing:
        raise TuttiError(f"no usable training windows for {', '.join(missing)}: drop them from --instruments or render more")
    try:
        val_sampler = WindowSampler(val_stems, instruments, frames, config.decoder.sample_rate_hz) if val_stems else None
    except TuttiError:
        val_sampler = None
    run_dir = args.run_dir or CHECKPOINTS / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        for name in ("last.pt", "best.pt"):
            (run_dir / name).unlink(missing_ok=True)
    hours = train_sampler.hours()
    print("training hours per voice: " + ", ".join(f"{k} {v:.2f} h" for k, v in sorted(hours.items())))
    result = train(config, train_sampler, val_sampler, run_dir)
    summary = {
        "name": args.name, "instruments": list(instruments), "steps": result.steps, "stopped": result.stopped,
        "best_val_loss": result.best_val_loss, "seconds_per_step_p50": result.seconds_per_step,
        "train_hours": hours, "val_hours": val_sampler.hours() if val_sampler else {},
        "training_manifest_sha256": data_hash(train_stems), "stems": str(stems_dir), "config": config.to_dict(),
    }
    from engine.safe_files import atomic_write_text

    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1, default=float) + "\n")
    print(f"trained {args.name}: {result.steps} steps ({result.stopped}), best validation loss {result.best_val_loss:.3f}, "
          f"{result.seconds_per_step:.2f} s/step; checkpoints and curves.png in {run_dir}")


def _cmd_export(args: argparse.Namespace) -> None:
    from training.voice.export import export_decoder
    from training.voice.train import load_decoder

    run_dir = args.run_dir
    best = run_dir / "best.pt"
    model, config, saved = load_decoder(best if best.is_file() else run_dir / "last.pt")
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        raise TuttiError(f"{run_dir}/summary.json is missing: finish a train-instrument run first") from None
    metrics = {}
    if args.metrics:
        try:
            metrics = json.loads(args.metrics.read_text())
        except (OSError, ValueError) as err:
            raise TuttiError(f"--metrics {args.metrics} is not readable JSON ({err})") from None
    out = args.out or Path("exported_models") / f"{summary['name']}.onnx"
    sidecar = export_decoder(model, out, config=config.to_dict(), manifest_sha256=summary["training_manifest_sha256"],
                             metrics=metrics | {"best_val_loss": summary["best_val_loss"], "train_hours": summary["train_hours"]},
                             steps=int(saved.get("step", summary["steps"])), force=args.force)
    print(f"exported {out} ({sidecar['onnx_bytes'] / 1024:.0f} KiB, {sidecar['parameters']} parameters) and {out.with_suffix('.json').name}")


def _cmd_eval(args: argparse.Namespace) -> None:
    import torch

    from training.voice.evaluate import evaluate_run

    torch.set_num_threads(args.threads)
    evaluate_run(args.run_dir, args.stems, args.out, split=args.split, max_seconds=args.max_seconds, force=args.force)


def add_voice_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `train-instrument`, `export` and `eval`."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    train = subparsers.add_parser(
        "train-instrument", help="train an instrument voice (DDSP decoder) on CPU", formatter_class=fmt,
        description="Train a DDSP decoder from a feature cache's monophonic stems (prepare-data render) or "
        "from a folder of your own monophonic recordings (one sample rate). Resumes from RUN_DIR/last.pt "
        "after a stop or a kill; writes best.pt, curves.png and summary.json there.",
    )
    train.add_argument("--stems", type=Path, required=True, metavar="DIR", help="feature cache (corpus/features) or a folder of recordings")
    train.add_argument("--name", required=True, help="voice name (a cache: one of the six, or an ensemble name)")
    train.add_argument("--instruments", default=None, help=f"comma list of voices from the cache ({','.join(ALL_VOICES)})")
    train.add_argument("--overlay", choices=("default", "research", "smoke"), default="default", help="size overlay")
    train.add_argument("--voice-set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a decoder/train field")
    train.add_argument("--sample-rate", type=int, choices=(16000, 24000), default=16000, help="training rate (the cache's)")
    train.add_argument("--minutes", type=float, default=0.0, help="stop (checkpointed) after this many minutes; 0: no limit")
    train.add_argument("--run-dir", type=Path, default=None, help="checkpoint folder (default checkpoints/NAME)")
    train.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    train.add_argument("--threads", type=int, default=1, help="torch threads")
    train.set_defaults(run=_cmd_train)

    export = subparsers.add_parser(
        "export", help="export a trained voice to streaming ONNX + sidecar", formatter_class=fmt,
        description="Write OUT.onnx (one call per 4 ms frame, GRU state in/out, batch axis, opset 17) and "
        "OUT.json (the sidecar the engine checks).",
    )
    export.add_argument("--run-dir", type=Path, required=True, help="a train-instrument checkpoint folder")
    export.add_argument("--out", type=Path, default=None, help="model path (default exported_models/NAME.onnx)")
    export.add_argument("--metrics", type=Path, default=None, help="an eval REPORT.json to record in the sidecar")
    export.add_argument("--force", action="store_true", help="replace a model Tutti exported before")
    export.set_defaults(run=_cmd_export)

    evaluate = subparsers.add_parser("eval", help="evaluate trained models in musical units", formatter_class=fmt)
    targets = evaluate.add_subparsers(dest="target", required=True, metavar="TARGET")
    from engine.retrieval.cli import add_eval_retrieval

    add_eval_retrieval(targets)
    from training.conductor.cli import add_eval_conductor

    add_eval_conductor(targets)
    instruments = targets.add_parser(
        "instruments", help="f0 cents, loudness dB and spectral distance against baselines", formatter_class=fmt,
        description="Resynthesise the held-out stems from their causal features, re-analyse the output with "
        "the engine, and compare with a sine voice and a mean-spectrum voice. Writes REPORT.json, "
        "REPORT.csv and spectrogram PNGs beside it.",
    )
    instruments.add_argument("--run-dir", type=Path, required=True, help="a train-instrument checkpoint folder")
    instruments.add_argument("--stems", type=Path, required=True, help="the feature cache (corpus/features)")
    instruments.add_argument("--out", type=Path, required=True, metavar="REPORT.json")
    instruments.add_argument("--split", choices=("test", "val"), default="test")
    instruments.add_argument("--max-seconds", type=float, default=60.0, help="seconds evaluated per stem")
    instruments.add_argument("--threads", type=int, default=1, help="torch threads")
    instruments.add_argument("--force", action="store_true", help="replace a report Tutti wrote")
    instruments.set_defaults(run=_cmd_eval)
