#!/usr/bin/env python3
"""Throughput of corpus rendering and feature extraction, local pool against a Dask cluster.

`python bench/data.py [--max-hours 0.05] [--workers 2] [--kinds chorale essen]` renders the
first scores of the default corpus plan (of the given kinds) into a temporary folder with each
executor, extracts their features, and prints seconds of audio per second per core: by task
time (the work alone) and by wall time x workers (with start-up and scheduling overhead).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.data.cache import FeatureSettings  # noqa: E402
from training.data.prepare import RunOptions, StageReport, prepare_features, prepare_render  # noqa: E402
from training.data.render import CORPUS_KINDS, RenderSettings, corpus_plan  # noqa: E402


def _row(executor: str, report: StageReport, analysed: bool) -> str:
    audio_s = report.analysed_s if analysed else report.audio_s
    wall = audio_s / (report.wall_s * report.workers) if report.wall_s and report.workers else 0.0
    return (
        f"{report.label.split()[0]:>8} {executor:>6} {report.workers:7d} {report.ran:6d} {audio_s:9.1f} "
        f"{report.wall_s:7.1f} {report.throughput(analysed):12.1f} {wall:12.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-hours", type=float, default=0.05, help="mix hours to render per executor")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample-rate", type=int, choices=(16000, 24000), default=16000)
    parser.add_argument("--kinds", nargs="+", choices=sorted(CORPUS_KINDS), default=["chorale", "essen"],
                        help="score kinds to draw from (quartets and masses are long pieces)")
    parser.add_argument("--executors", nargs="+", choices=("local", "dask", "ray"), default=["local", "dask"])
    args = parser.parse_args()
    plan = [ref for ref in corpus_plan() if ref.kind in args.kinds]
    print(f"{'stage':>8} {'exec':>6} {'workers':>7} {'songs':>6} {'audio s':>9} {'wall s':>7} "
          f"{'s/s/core':>12} {'wall s/s/core':>12}")
    for executor in args.executors:
        options = RunOptions(executor, args.workers, min_free_gb=0.5, max_hours=args.max_hours)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            render = prepare_render(RenderSettings(out, args.sample_rate), options, plan, stream=io.StringIO())
            print(_row(executor, render, analysed=False), flush=True)
            features = prepare_features("tutti", out, FeatureSettings(out / "features", args.sample_rate),
                                        RunOptions(executor, args.workers, min_free_gb=0.5), stream=io.StringIO())
            print(_row(executor, features, analysed=True), flush=True)
    print("render: mix seconds; features: seconds analysed (every stem and the mix)")


if __name__ == "__main__":
    main()
