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
