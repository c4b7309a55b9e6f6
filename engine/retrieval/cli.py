"""`launch.py build-index` and `launch.py extend`: the argparse side of engine/retrieval.

`add_retrieval_parsers(subparsers)` registers both; problems a user can fix are raised as
TuttiError (one line, exit code 2 in launch.py).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from engine.config.cli import add_config_options, resolve_config

REPO = Path(__file__).resolve().parents[2]
DATASET_CHOICES = ("auto", "tutti", "slakh", "babyslakh", "lsx", "urmp", "audio")


def _cmd_build_index(args: argparse.Namespace) -> None:
    from engine.errors import TuttiError
    from engine.retrieval.build import BuildOptions, build_index

    resolve_config(args)  # checks --config/--set like every subcommand
    if args.workers < 1:
        raise TuttiError(f"--workers {args.workers}: give 1 or more")
    report = build_index(BuildOptions(
        root=args.root, out=args.out, dataset=args.dataset, cache_dir=args.cache, add=args.add, force=args.force,
        executor=args.executor, workers=args.workers, scheduler=args.scheduler,
    ))
    print(
        f"wrote {args.out}: {report.songs_added} songs added ({report.chunks_added} chunks), "
        f"{report.songs_present} already indexed, {len(report.skipped)} skipped; "
        f"{report.chunks_total} chunks in all; {report.wall_s:.1f} s"
    )
    for song, reason in report.skipped:
        print(f"  skipped {song}: {reason}")


def _cmd_extend(args: argparse.Namespace) -> None:
    from engine.retrieval.extend import extend_clip

    sets = [f"engine.block_samples={args.blocksize}"] if args.blocksize is not None else []
    result = extend_clip(args.clip, args.out, resolve_config(args, *sets), index_dir=args.index,
                         top_k=args.top_k, seconds=args.seconds, force=args.force)
    print(f"wrote {args.out}: {len(result['candidates'])} extensions of a {result['clip_s']:.1f} s clip "
          f"(tempo {result['tempo_bpm']:.0f} BPM{'' if result['tempo_used'] else ' unsure, not used'}, key {result['key']})")
    for candidate in result["candidates"]:
        first = candidate["steps"][0]
        print(f"  {candidate['file']}: score {candidate['score']:.3f}, from {first['song']} at {first['start_s']:.0f} s "
              f"({first['transpose']:+d} st), join {candidate['join_s']:.2f} s, seam jump {candidate['seam']['loudness_jump_db']:.1f} dB")


def _cmd_eval_retrieval(args: argparse.Namespace) -> None:
    import json

    from engine.retrieval.evaluate import REPORT_SIGNATURE, evaluate
    from engine.safe_files import atomic_write_text, claim_output_file

    resolve_config(args)
    claim_output_file(args.out, force=args.force, command="eval", signature=REPORT_SIGNATURE)
    report = evaluate(args.index, args.corpus, tuple(args.splits.split(",")), args.every, args.max_queries, args.seam_joins)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    methods = report["methods"]
    print(f"wrote {args.out}: {report['queries']} queries; recall@5 tutti {methods['tutti']['recall@5']:.3f}, "
          f"baseline {methods['baseline']['recall@5']:.3f}, random {methods['random']['recall@5']:.3f}")


def add_eval_retrieval(targets) -> None:
    """Register `eval retrieval` on the `eval` subcommand's targets (its parser lives elsewhere)."""
    from engine.retrieval.evaluate import QUERY_EVERY_S, SEAM_SAMPLE

    parser = targets.add_parser(
        "retrieval", help="recall@K of continuations on held-out songs against the original design",
        description="The honest evaluation (engine/retrieval/evaluate.py): held-out leaders re-rendered "
        "with another soundfont, overlapping chunks excluded, target = the next chunk.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, metavar="REPORT.json")
    parser.add_argument("--index", type=Path, default=REPO / "index", metavar="DIR")
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus", metavar="DIR")
    parser.add_argument("--splits", default="val,test", help="comma-separated splits of the songs to query")
    parser.add_argument("--every", type=float, default=QUERY_EVERY_S, metavar="S", help="seconds between query ends")
    parser.add_argument("--max-queries", type=int, default=None, metavar="N")
    parser.add_argument("--seam-joins", type=int, default=SEAM_SAMPLE, metavar="N", help="joins rendered for the seam figures")
    parser.add_argument("--force", action="store_true", help="replace a report Tutti wrote")
    add_config_options(parser)
    parser.set_defaults(run=_cmd_eval_retrieval)


def add_retrieval_parsers(commands) -> None:
    """Register `build-index` and `extend` on launch.py's subparsers."""
    build = commands.add_parser(
        "build-index", help="index a corpus (or a folder of audio files) for retrieval",
        description="Cut every song's leader stem into 2 s chunks (hop 1 s), embed them, and write an "
        "hnswlib index with SQLite metadata and each stem's notes (or 50 Hz curves) into --out. "
        "The corpus's feature cache is brought up to date first.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    build.add_argument("--root", type=Path, default=REPO / "corpus", metavar="DIR", help="songs to index")
    build.add_argument("--dataset", choices=DATASET_CHOICES, default="auto",
                       help="layout of --root (auto: Slakh-layout tracks, else audio files)")
    build.add_argument("--out", type=Path, default=REPO / "index", metavar="DIR", help="index folder")
    build.add_argument("--cache", type=Path, default=None, metavar="DIR", help="feature cache (default ROOT/features)")
    build.add_argument("--add", action="store_true", help="add songs not yet indexed to an existing index")
    build.add_argument("--force", action="store_true", help="replace an existing index")
    build.add_argument("--executor", choices=("local", "dask", "ray"), default="local", help="where the feature stage runs")
    build.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2), metavar="N", help="feature workers")
    build.add_argument("--scheduler", default=None, metavar="ADDRESS", help="join a running Dask scheduler or Ray cluster")
    add_config_options(build)
    build.set_defaults(run=_cmd_build_index)

    extend = commands.add_parser(
        "extend", help="continue a clip along the Top-K retrieved continuations",
        description="Find the continuations of CLIP's last 2 s in the index and write DIR/extended_N.wav for "
        "each of the Top-K paths (played by Tutti's voices, joined with an equal-power crossfade, gain "
        "matched and beat aligned), with candidates.json (scores, sources) and config.toml.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    extend.add_argument("clip", type=Path, metavar="CLIP", help="audio file, at least 2 s, ending with playing")
    extend.add_argument("--out", type=Path, required=True, metavar="DIR")
    extend.add_argument("--top-k", type=int, default=3, metavar="K", help="how many continuations")
    extend.add_argument("--seconds", type=float, default=8.0, metavar="S", help="length of each continuation")
    extend.add_argument("--index", type=Path, default=REPO / "index", metavar="DIR", help="chunk index folder")
    extend.add_argument("--force", action="store_true", help="replace Tutti's files in a non-empty DIR")
    extend.add_argument("--blocksize", type=int, default=None, metavar="N", help="block size in samples, 16..4096")
    add_config_options(extend)
    extend.set_defaults(run=_cmd_extend)
