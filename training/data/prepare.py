"""Preparation runs: render the default corpus, build feature caches, report what happened.

Both stages share `run_stage`: jobs go to an executor (bounded in flight), each result is
appended to the stage's manifest as soon as it arrives (a killed run keeps everything that
finished), a progress bar with ETA runs on stderr, and free disk is checked before every
submission. When it falls below the margin the stage stops submitting, collects what is in
flight and reports `stop_reason`; rerunning the same command continues where it stopped,
since finished songs are recognised from the manifest and skipped without any work.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from engine.safe_files import claim_output_dir
from training.data.cache import FeatureSettings, extract_features, is_current, song_folder
from training.data.executors import open_executor, run_jobs
from training.data.items import Skip, SongItem
from training.data.loaders import load_dataset
from training.data.manifest import MANIFEST_NAME, Manifest, Record
from training.data.progress import Progress
from training.data.render import RenderSettings, ScoreRef, corpus_plan, render_track, track_name


RENDER_COMMAND = "prepare-data render"
FEATURES_COMMAND = "prepare-data features"


@dataclass(frozen=True)
class RunOptions:
    """How a stage runs: executor ("local", "dask", "ray"), its workers or scheduler address,
    the free-disk margin in GB, an audio budget in hours (mix duration; None: no limit)."""

    executor: str = "local"
    workers: int = 2
    scheduler: str | None = None
    min_free_gb: float = 1.0
    max_hours: float | None = None
    dry_run: bool = False


@dataclass
class StageReport:
    """What one stage did: `audio_s` mix seconds made in this run, `analysed_s` seconds of audio
    analysed (every stem and the mix), `busy_s` the tasks' summed time."""

    label: str
    planned: int
    reused: int
    ran: int = 0
    audio_s: float = 0.0
    analysed_s: float = 0.0
    busy_s: float = 0.0
    wall_s: float = 0.0
    workers: int = 0
    skipped: list[Skip] = field(default_factory=list)
    stop_reason: str | None = None
    note: str | None = None
    worker_ids: set[Any] = field(default_factory=set)
    records: list[Record] = field(default_factory=list)

    def throughput(self, analysed: bool = False) -> float:
        """Mix (or with `analysed`, all analysed) audio seconds per second of task time: per busy core."""
        return (self.analysed_s if analysed else self.audio_s) / self.busy_s if self.busy_s > 0 else 0.0

    def lines(self) -> list[str]:
        """A short human summary, one skip reason a line (a dry run's plan instead)."""
        if self.note is not None:
            return [self.note]
        head = (
            f"{self.label}: {self.ran} done, {self.reused} already current, {len(self.skipped)} skipped; "
            f"{self.audio_s / 3600:.3f} h audio in {self.wall_s:.1f} s on {self.workers} workers "
            f"({self.throughput():.1f} mix s per s per core"
            + (f", {self.throughput(True):.1f} analysed s per s per core)" if self.analysed_s else ")")
        )
        return [head] + [f"  skipped {s.song_id}: {s.reason}" for s in self.skipped]


def claim_stage_dir(folder: Path, command: str, names: Iterable[str] = ()) -> None:
    """Claim a stage's output folder (engine.safe_files): created, or continued when this same
    command made it; refused when it holds files Tutti did not write. `names` beyond the
    config and manifest: track or song subfolders ("Track00001/")."""
    claim_output_dir(folder, force=False, command=command, names=["config.toml", MANIFEST_NAME, *names], resume=True)


def low_disk(folder: Path, min_free_gb: float) -> str | None:
    """A message when `folder`'s file system has less than `min_free_gb` free, else None."""
    folder.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(folder).free / 1e9
    if free_gb >= min_free_gb:
        return None
    return (
        f"free disk under {folder} is {free_gb:.2f} GB, below the --min-free-gb margin of "
        f"{min_free_gb:.2f} GB: free some space, then rerun the same command to resume"
    )


def run_stage(
    report: StageReport, task: Callable[[Any], Record], jobs: Iterable[Any], manifest: Manifest,
    options: RunOptions, out_dir: Path, budget_s: float | None = None, stream: TextIO = sys.stderr,
) -> StageReport:
    """Run `task` over `jobs`, recording each result in `manifest`, until done, out of disk,
    or `budget_s` seconds of audio (mix duration) were made in this run."""
    started = time.perf_counter()
    progress = Progress(report.label, report.planned - report.reused, stream, budget_s)

    def should_stop() -> bool:
        if budget_s is not None and report.audio_s >= budget_s:
            return True
        report.stop_reason = report.stop_reason or low_disk(out_dir, options.min_free_gb)
        return report.stop_reason is not None

    executor = open_executor(options.executor, options.workers, options.scheduler)
    report.workers = executor.workers
    try:
        for record in run_jobs(executor, task, jobs, should_stop):
            worker = record.pop("worker")
            report.worker_ids.add(worker["engine_worker"] or worker["pid"])
            report.busy_s += record.pop("task_s")
            manifest.update(record["song_id"], **record)
            report.records.append(record)
            if record["status"] == "ok":
                report.ran += 1
                report.audio_s += record["duration_s"]
                report.analysed_s += record.get("analysed_s", 0.0)
            else:
                report.skipped.append(Skip(record["song_id"], record["reason"]))
            progress.advance(record.get("duration_s", 0.0), skipped=record["status"] != "ok")
    finally:
        progress.close()
        executor.close()
        manifest.compact()
    report.wall_s = time.perf_counter() - started
    return report


def plan_features(items: list[SongItem], manifest: Manifest, settings: FeatureSettings) -> list[SongItem]:
    """The items whose cache is missing, stale (other version or rate) or whose audio changed."""
    return [item for item in items if not is_current(manifest.records.get(item.song_id), item, settings)]


def prepare_features(
    dataset: str, root: Path, settings: FeatureSettings, options: RunOptions, stream: TextIO = sys.stderr,
) -> StageReport:
    """Feature caches of every song of `dataset` under `root`, in `settings.cache_dir`."""
    items, load_skips = load_dataset(dataset, root)
    if not options.dry_run:
        claim_stage_dir(settings.cache_dir, FEATURES_COMMAND, [
            song_folder(settings.cache_dir, item.song_id).relative_to(settings.cache_dir).as_posix() + "/" for item in items
        ])
    manifest = Manifest(settings.cache_dir)
    todo = plan_features(items, manifest, settings)
    report = StageReport(f"features {dataset}", planned=len(items), reused=len(items) - len(todo))
    for skip in load_skips:
        manifest.update(skip.song_id, dataset=dataset, status="skipped", reason=skip.reason)
    report.skipped += load_skips
    if options.dry_run:
        report.note = (f"features {dataset}: would build {len(todo)} of {len(items)} songs into "
                       f"{settings.cache_dir} ({report.reused} current, {len(load_skips)} unloadable)")
    if options.dry_run or not todo:
        return report
    budget_s = options.max_hours * 3600 if options.max_hours is not None else None
    return run_stage(report, extract_features, ((item, settings) for item in todo), manifest, options,
                     settings.cache_dir, budget_s, stream)


def corpus_hours(manifest: Manifest) -> dict[str, float]:
    """Hours of mix in the rendered corpus: all, in songs with generated parts, fully composed."""
    ok = [r for r in manifest.records.values() if r.get("status") == "ok"]
    generated = sum(r["duration_s"] for r in ok if r.get("generated"))
    total = sum(r["duration_s"] for r in ok)
    return {"total": total / 3600, "generated": generated / 3600, "composed": (total - generated) / 3600}


def prepare_render(
    settings: RenderSettings, options: RunOptions, plan: list[ScoreRef] | None = None, stream: TextIO = sys.stderr,
    kinds: frozenset[str] | None = None,
) -> StageReport:
    """Render the plan (default: `corpus_plan()`) into `settings.out_dir`, up to `max_hours` of mix
    in the whole corpus (tracks rendered before count); finished tracks are not rendered again.
    `kinds` renders only scores of those kinds; each keeps its track number from the whole plan,
    so renders of different kinds into one folder never collide."""
    plan = corpus_plan() if plan is None else plan
    if not options.dry_run:
        tracks = [track_name(i) for i in range(len(plan))]
        claim_stage_dir(settings.out_dir, RENDER_COMMAND, ["features/", *(f"{t}/" for t in tracks), *(f"{t}.partial/" for t in tracks)])
    manifest = Manifest(settings.out_dir)
    jobs = [
        (track_name(i), ref, settings) for i, ref in enumerate(plan)
        if (kinds is None or ref.kind in kinds)
        and not (manifest.ok(ref.song_id) and (settings.out_dir / track_name(i) / "metadata.yaml").is_file())
    ]
    report = StageReport("render", planned=len(plan), reused=len(plan) - len(jobs))
    budget_s = None
    if options.max_hours is not None:
        budget_s = max(0.0, options.max_hours * 3600 - corpus_hours(manifest)["total"] * 3600)
    if options.dry_run:
        counts = Counter(ref.kind for _, ref, _ in jobs)
        report.note = (
            f"render: would render up to {len(jobs)} of {len(plan)} scores ("
            + ", ".join(f"{kind} {n}" for kind, n in counts.items()) + ")"
            + (f", stopping after {budget_s / 3600:.2f} h of mix" if budget_s is not None else "")
        )
        return report
    if budget_s == 0.0 or not jobs:
        return report
    return run_stage(report, render_track, iter(jobs), manifest, options, settings.out_dir, budget_s, stream)
