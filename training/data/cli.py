"""`launch.py prepare-data {render,features}`: the argparse side of training/data.

`add_prepare_data_parser(subparsers)` registers the subcommand and sets `run=callable(args)`;
problems a user can fix are raised as TuttiError (one line, exit code 2 in launch.py). Building
the parser imports only the standard library, numpy and engine.errors, so launch.py can
register it on an install without the training requirements.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.config import config_to_toml
from engine.safe_files import atomic_write_text
from engine.config.cli import add_config_options, resolve_config
from engine.errors import TuttiError
from training.data.executors import EXECUTORS
from training.data.items import DATASETS

TRAINING_RATES_HZ = (16000, 24000)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sample-rate", type=int, choices=TRAINING_RATES_HZ, default=16000, help="training rate in Hz")
    parser.add_argument("--max-hours", type=float, default=None, metavar="H", help="stop after H hours of mix duration")
    parser.add_argument("--executor", choices=EXECUTORS, default="local", help="local process pool, or a Dask/Ray cluster")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N", help="worker processes (local pool or local cluster)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS", help="join a running Dask scheduler or Ray cluster instead of starting one")
    parser.add_argument("--min-free-gb", type=float, default=1.0, metavar="GB", help="stop cleanly (resumable) below this much free disk")
    parser.add_argument("--dry-run", action="store_true", help="say what would be done, write nothing")
    add_config_options(parser)


def _record_config(args: argparse.Namespace, folder: Path, command: str) -> None:
    """Check --config/--set, claim the output folder and keep the resolved config in it."""
    config = resolve_config(args)
    if not args.dry_run:
        from training.data.prepare import claim_stage_dir

        claim_stage_dir(folder, command)
        atomic_write_text(folder / "config.toml", config_to_toml(config))


def _options(args: argparse.Namespace, max_hours: float | None):
    from training.data.prepare import RunOptions

    if args.workers < 1:
        raise TuttiError(f"--workers {args.workers}: give 1 or more")
    return RunOptions(args.executor, args.workers, args.scheduler, args.min_free_gb, max_hours, args.dry_run)


def _finish(reports) -> None:
    for report in reports:
        print("\n".join(report.lines()))
    stopped = next((r.stop_reason for r in reports if r.stop_reason), None)
    if stopped:
        raise TuttiError(stopped)


def _kinds(text: str | None) -> frozenset[str] | None:
    """`--kinds chorale,quartet` as a set, each checked against the corpus's kinds."""
    from training.data.render import CORPUS_KINDS

    if text is None:
        return None
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(kinds - set(CORPUS_KINDS))
    if unknown or not kinds:
        raise TuttiError(f"--kinds {text!r}: {', '.join(unknown) or 'empty'} is not a kind; give some of {', '.join(CORPUS_KINDS)}")
    return kinds


def _cmd_render(args: argparse.Namespace) -> None:
    from training.data.cache import FeatureSettings
    from training.data.prepare import RENDER_COMMAND, corpus_hours, prepare_features, prepare_render
    from training.data.manifest import Manifest
    from training.data.render import RenderSettings

    _record_config(args, args.out, RENDER_COMMAND)
    given = {"soundfont": args.soundfont, "max_midi_s": args.max_midi_s}
    settings = RenderSettings(args.out, args.sample_rate, args.seed, **{k: v for k, v in given.items() if v is not None})
    reports = [prepare_render(settings, _options(args, args.max_hours), kinds=_kinds(args.kinds))]
    if not args.no_features and not reports[0].stop_reason and not args.dry_run:
        features = FeatureSettings(args.out / "features", args.sample_rate)
        reports.append(prepare_features("tutti", args.out, features, _options(args, None)))
    if not args.dry_run:
        hours = corpus_hours(Manifest(args.out))
        print(f"corpus {args.out}: {hours['total']:.2f} h of mix ({hours['composed']:.2f} h fully composed, "
              f"{hours['generated']:.2f} h with generated accompaniment)")
    _finish(reports)


def _cmd_features(args: argparse.Namespace) -> None:
    from training.data.cache import FeatureSettings
    from training.data.prepare import FEATURES_COMMAND, prepare_features

    out = args.out or (args.root / "features")
    _record_config(args, out, FEATURES_COMMAND)
    _finish([prepare_features(args.dataset, args.root, FeatureSettings(out, args.sample_rate), _options(args, args.max_hours))])


def add_prepare_data_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `prepare-data` with its `render` and `features` subcommands."""
    prepare = subparsers.add_parser(
        "prepare-data", help="render the training corpus, build feature caches",
        description="Render the default multitrack corpus (music21 scores through FluidSynth, Slakh "
        "layout) and build feature caches for it or for Slakh/BabySlakh, LSX, URMP and Essen. "
        "Idempotent and resumable: rerun the same command to continue.",
    )
    steps = prepare.add_subparsers(dest="step", required=True, metavar="STEP")
    render = steps.add_parser(
        "render", help="render the default corpus into DIR",
        description="Render music21's Bach chorales, string quartets, Palestrina masses and Essen tunes "
        "(with generated accompaniment) into DIR/TrackNNNNN/ (16-bit FLAC stems and mix, MIDI, "
        "metadata.yaml), DIR/manifest.jsonl, and their features into DIR/features/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    render.add_argument("--out", type=Path, required=True, metavar="DIR", help="corpus folder (created; reused when resuming)")
    render.add_argument("--seed", type=int, default=0, help="seed of instrument choice and humanisation")
    render.add_argument("--soundfont", type=Path, default=None, metavar="SF2", help="General MIDI soundfont (default: /usr/share/sounds/sf2/FluidR3_GM.sf2, MIT licensed)")
    render.add_argument("--max-midi-s", type=float, default=None, metavar="S", help="skip a score whose MIDI lasts longer (default: 2400)")
    render.add_argument("--kinds", default=None, metavar="K[,K]", help="render only scores of these kinds (chorale, quartet, palestrina, essen); tracks keep their numbers")
    render.add_argument("--no-features", action="store_true", help="render only, do not extract features")
    _add_run_options(render)
    render.set_defaults(run=_cmd_render)

    features = steps.add_parser(
        "features", help="build the feature cache of a dataset",
        description="Extract the engine's features (f0, voicing, loudness, onset, chroma at 250 Hz) of "
        "every stem and mix, and note labels where MIDI or annotations exist, into a cache with "
        "its manifest.jsonl. Songs already cached at this feature version are not touched.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    features.add_argument("--dataset", choices=DATASETS, required=True, help="the layout of --root")
    features.add_argument("--root", type=Path, required=True, metavar="DIR", help="the dataset folder")
    features.add_argument("--out", type=Path, default=None, metavar="DIR", help="cache folder (default ROOT/features)")
    _add_run_options(features)
    features.set_defaults(run=_cmd_features)
    return prepare


def main(argv: list[str] | None = None) -> int:
    """Run `prepare-data` alone (`python -m training.data.cli render --out DIR`), as launch.py would."""
    parser = argparse.ArgumentParser(prog="prepare-data")
    commands = parser.add_subparsers(dest="command", required=True)
    add_prepare_data_parser(commands)
    args = parser.parse_args(["prepare-data", *(sys.argv[1:] if argv is None else argv)])
    try:
        args.run(args)
    except TuttiError as err:
        print(f"tutti: error: {' '.join(str(err).splitlines())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
