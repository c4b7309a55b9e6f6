"""`launch.py train-conductor` and `launch.py eval conductor`: the argparse side of training/conductor."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.errors import TuttiError

CHECKPOINTS = Path("checkpoints")
KINDS = ("conductor", "baseline")


def _songs(cache: Path, split: str, workers: int):
    from training.conductor.dataset import load_songs

    if not cache.is_dir():
        raise TuttiError(f"--cache {cache} is not a folder: give a feature cache (prepare-data render writes corpus/features)")
    return load_songs(cache, split, workers)


def _cmd_train(args: argparse.Namespace) -> None:
    import torch

    from engine.safe_files import atomic_write_text
    from training.conductor.dataset import WindowSampler
    from training.conductor.model import BASELINE_MODEL, ModelConfig
    from training.conductor.train import RunConfig, TrainConfig, train

    torch.set_num_threads(args.threads)
    train_songs = _songs(args.cache, "train", args.workers)
    val_songs = _songs(args.cache, "val", args.workers)
    sampler = WindowSampler(train_songs, transpose=True)
    val_sampler = WindowSampler(val_songs) if val_songs else None
    print(f"conductor data: {len(train_songs)} training songs ({sampler.hours:.2f} h), {len(val_songs)} validation songs")
    summaries = {}
    for kind in (KINDS if args.kind == "both" else (args.kind,)):
        run_dir = (args.run_dir or CHECKPOINTS / "conductor") / kind
        run_dir.mkdir(parents=True, exist_ok=True)
        if args.fresh:
            for name in ("last.pt", "best.pt"):
                (run_dir / name).unlink(missing_ok=True)
        model = BASELINE_MODEL if kind == "baseline" else ModelConfig()
        config = RunConfig(kind=kind, model=model, train=TrainConfig(max_steps=args.steps, max_minutes=args.minutes))
        result = train(config, sampler, val_sampler, run_dir)
        summary = result | {"kind": kind, "train_songs": [s.song_id for s in train_songs], "config": config.to_dict()}
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1, default=float) + "\n")
        summaries[kind] = summary
        print(f"trained {kind}: {result['steps']} steps ({result['stopped']}), best validation loss "
              f"{result['best_val_loss']:.4f}, {result['seconds_per_step']:.2f} s/step; files in {run_dir}")
    if args.export is not None:
        from training.conductor.dataset import mean_leader_loudness

        _export(args, (args.run_dir or CHECKPOINTS / "conductor") / "conductor", mean_leader_loudness(train_songs))


def _export(args: argparse.Namespace, run_dir: Path, leader_loudness_db: float) -> None:
    from training.conductor.export import export_conductor
    from training.conductor.train import load_model

    best = run_dir / "best.pt"
    model, config, saved = load_model(best if best.is_file() else run_dir / "last.pt")
    if config.kind != "conductor":
        raise TuttiError(f"{run_dir} holds a {config.kind}, not a conductor: only the causal conductor plays live")
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    training = {"steps": int(saved.get("step", 0)), "val_loss": float(saved.get("val_loss", float("nan"))),
                "hours": summary.get("hours"), "songs": len(summary.get("train_songs", []))}
    sidecar = export_conductor(model, args.export, config=config.to_dict(), training=training,
                               leader_loudness_db=leader_loudness_db, force=args.force)
    print(f"exported {args.export} ({sidecar['onnx_bytes'] / 1024:.0f} KiB, {sidecar['parameters']} parameters) "
          f"and {args.export.with_suffix('.json').name}")


def add_conductor_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `train-conductor`."""
    train = subparsers.add_parser(
        "train-conductor", help="train the conductor (and its non-causal baseline) on CPU",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train the causal conductor on a feature cache's composed multi-part songs (the melody "
        "part leads, the other parts are the roles' truth) and/or the non-causal loudness-only baseline. "
        "Resumes from RUN_DIR/KIND/last.pt; writes best.pt, curves.png and summary.json there; --export "
        "writes the conductor as ONNX with its sidecar.",
    )
    train.add_argument("--cache", type=Path, default=Path("corpus/features"), metavar="DIR", help="feature cache (prepare-data)")
    train.add_argument("--kind", choices=(*KINDS, "both"), default="both", help="which model to train")
    train.add_argument("--steps", type=int, default=6000, help="training steps of each model")
    train.add_argument("--minutes", type=float, default=0.0, help="stop (checkpointed) after this many minutes per model; 0: no limit")
    train.add_argument("--run-dir", type=Path, default=None, help="checkpoint folder (default checkpoints/conductor)")
    train.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    train.add_argument("--export", type=Path, default=None, metavar="OUT.onnx", help="export the trained conductor here")
    train.add_argument("--force", action="store_true", help="replace a conductor Tutti exported before")
    train.add_argument("--threads", type=int, default=2, help="torch threads")
    train.add_argument("--workers", type=int, default=2, help="processes that build the per-song training arrays")
    train.set_defaults(run=_cmd_train)


def _cmd_eval(args: argparse.Namespace) -> None:
    import torch

    from engine.config.cli import resolve_config
    from engine.safe_files import claim_output_file
    from training.conductor.evaluate import SIGNATURE, evaluate, write_report

    torch.set_num_threads(args.threads)
    claim_output_file(args.out, force=args.force, command="eval", signature=SIGNATURE)
    baseline = args.baseline_run if args.baseline_run and args.baseline_run.is_dir() else None
    report = evaluate(args.model, args.cache, resolve_config(args), baseline_run=baseline, split=args.split,
                      max_seconds=args.max_seconds, max_songs=args.max_songs, workers=args.workers,
                      rolls_dir=args.out.parent / (args.out.stem + "-rolls"))
    write_report(report, args.out)
    c, b = report["conductor"], report["baselines"]
    print(f"conductor on {len(report['songs'])} {args.split} songs: loudness error "
          f"{c['loudness'].get('all', {}).get('loudness_mae_db', float('nan')):.2f} dB, bass pitch class "
          f"{c['bass_pitch_class_accuracy']:.3f} (octave rule {b['octave_leader']['bass_pitch_class_accuracy']:.3f}), "
          f"chord tones {c['chord_tone_share']:.3f} (tonic triad {b['tonic_triad']['chord_tone_share']:.3f}), "
          f"onset F1 {c['onsets']['onset_f1']:.3f} at {c['onsets']['mean_asynchrony_ms']:+.1f} ms; report {args.out}")


def add_eval_conductor(targets: argparse._SubParsersAction) -> None:
    """Register `eval conductor`."""
    from engine.config.cli import add_config_options
    from engine.models.conductor import DEFAULT_CONDUCTOR

    parser = targets.add_parser(
        "conductor", help="the conductor against its baselines on held-out composed songs",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Play each held-out song's melody through the engine (perform's block processor, the live "
        "period and lookahead) with one voice per role, and score what the followers play in acoustic time "
        "against the score's other parts: loudness, bass pitch class, chord tones, onsets; with every "
        "baseline of the issue. Writes REPORT.json and piano rolls in REPORT-rolls/.",
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_CONDUCTOR, help="the conductor ONNX model")
    parser.add_argument("--cache", type=Path, default=Path("corpus/features"), help="the feature cache")
    parser.add_argument("--baseline-run", type=Path, default=CHECKPOINTS / "conductor" / "baseline",
                        help="the non-causal baseline's checkpoint folder (skipped when absent)")
    parser.add_argument("--out", type=Path, required=True, metavar="REPORT.json")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="seconds of each song played")
    parser.add_argument("--max-songs", type=int, default=0, help="at most this many songs (0: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--workers", type=int, default=1, help="processes that build the training statistics")
    parser.add_argument("--force", action="store_true", help="replace a report Tutti wrote")
    add_config_options(parser)
    parser.set_defaults(run=_cmd_eval)
