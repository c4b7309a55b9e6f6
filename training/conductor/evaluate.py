"""`launch.py eval conductor`: the conductor against its baselines on held-out composed songs.

Each song's melody stem is played through the engine (the `perform` path: the block processor
with a voice per role, the conductor task at its live period and lookahead), and what every
follower plays is recorded per control frame. A frame's notes are heard at (frame + 1) * 4 ms
plus the nominal device latency, and are compared with the score's other parts at that
acoustic time (training/conductor/targets.py), so a model that only reacts shows up late.
Baselines are judged on the same frames; the non-causal loudness-only model reads the
recorded analysis of the whole song.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.conductor.contract import (
    BIN_FRAMES, FRAME_S, CONTEXT_STEPS, LOOKAHEAD_FRAMES, NOMINAL_DEVICE_LATENCY_S, PERIOD_FRAMES, ROLES, STEP_FRAMES,
    unscale_loudness,
)
from engine.conductor.inputs import VOICING_THRESHOLD, song_inputs
from engine.config import TuttiConfig, VoiceConfig
from engine.errors import TuttiError
from engine.features.frames import F0, LOUDNESS, N_FEATURES, VOICING
from engine.parts import MAX_NOTES, PART_ACTIVE, PART_F0, PART_LOUDNESS, PART_ONSET, PART_ROWS
from engine.safe_files import atomic_write_text
from training.conductor.dataset import SongData, load_songs, song_parts, songs_of
from training.conductor.metrics import OnsetTally, chord_tone_counts, loudness_scores, onset_times, pitch_class_accuracy
from training.conductor.targets import SOUNDING_DB, RoleTracks, role_tracks

PITCHED_ROLES = ("bass", "counter", "harmony")
REPORT_KIND = "tutti-conductor-eval"
SIGNATURE = b'{\n "kind": "tutti-conductor-eval"'
ROLE_KINDS = {"bass": "reference:plucked-bass", "counter": "reference:bowed-strings", "harmony": "reference:organ",
              "drums": "reference:plucked-bass"}
LEADER_INTERVALS = {"bass": -12.0, "counter": -5.0, "harmony": 4.0}  # today's default rule, per voice


@dataclasses.dataclass
class Recording:
    """A song played through the engine, per control frame (see `perform_leader` for the index)."""

    frames: np.ndarray                 # [n, 16] the leader's analysis
    parts: np.ndarray                  # [n, roles, 4, MAX_NOTES] what each role's voice played
    key: np.ndarray                    # [n, 2] tonic, mode (0 major, 1 minor) in force; -1 none
    beats: np.ndarray                  # [n] 1 where a beat of the tempo/key estimate in force falls
    wall_s: float


def role_config(base: TuttiConfig, model: Path) -> TuttiConfig:
    """`base` with one voice per role, each played by a reference timbre, and the given conductor."""
    voices = tuple((role, VoiceConfig(kind=ROLE_KINDS[role], role=role)) for role in ROLES)
    return dataclasses.replace(base, voices=voices,
                               conductor=dataclasses.replace(base.conductor, model=str(model), midi_out=False))


def perform_leader(audio: np.ndarray, config: TuttiConfig) -> Recording:
    """Play `audio` (engine rate) through the block processor; record each frame as voices step it.

    Part frames are stored at index clock - 1 (the clock counts frames computed), so index n holds
    what sounds from the end of frame n on: heard at (n + 1) * 4 ms + latency, as the targets.
    """
    from engine.processor import BlockProcessor

    processor = BlockProcessor(config)
    block = config.engine.block_samples
    n_frames = len(audio) // processor.frame_samples
    frames = np.zeros((n_frames, N_FEATURES))
    parts = np.zeros((n_frames, len(ROLES), PART_ROWS, MAX_NOTES))
    key = np.full((n_frames, 2), -1.0)
    beats = np.zeros(n_frames)
    started = time.perf_counter()
    padded = np.zeros(-(-len(audio) // block) * block, dtype=np.float32)
    padded[: len(audio)] = audio
    done = 0
    for start in range(0, len(padded), block):
        processor.process(padded[start : start + block])
        while done < min(processor.frame_index, n_frames):
            frames[done] = processor.frame
            for r, voice in enumerate(processor.voices):
                parts[done, r] = voice.part_frame
            estimate = processor.tempo_key
            if estimate is not None:
                key[done] = (estimate.key_tonic, 0.0 if estimate.key_mode == "major" else 1.0)
                if estimate.beat_period_frames > 0:
                    position = (done - estimate.beat_frame) % estimate.beat_period_frames
                    beats[done] = position < 1.0
            done += 1
    return Recording(frames, parts, key, beats, time.perf_counter() - started)


def _midi(f0_hz: np.ndarray) -> np.ndarray:
    """Rounded MIDI pitch of each f0 (-1 where 0)."""
    safe = np.maximum(f0_hz, 1e-6)
    return np.where(f0_hz > 0, np.round(69 + 12 * np.log2(safe / 440.0)), -1).astype(np.int64)


def _leader_pitch(frames: np.ndarray) -> np.ndarray:
    voiced = (frames[:, VOICING] >= VOICING_THRESHOLD) & (frames[:, F0] > 0)
    return np.where(voiced, _midi(frames[:, F0]), -1)


def leader_onsets(frames: np.ndarray) -> np.ndarray:
    """Where the leader's note starts, as the engine hears it: voicing comes on, or the held
    pitch moves by a semitone or more (the copied-leader onset baseline)."""
    pitch = _leader_pitch(frames)
    previous = np.concatenate([[-1], pitch[:-1]])
    return ((pitch >= 0) & ((previous < 0) | (np.abs(pitch - previous) >= 1))).astype(float)


def _role_notes(parts: np.ndarray, role: int) -> np.ndarray:
    """[n, MAX_NOTES] MIDI notes a role's voice sounds (-1 none)."""
    part = parts[:, role]
    return np.where(part[:, PART_ACTIVE] > 0, _midi(part[:, PART_F0]), -1)


def _role_loudness(parts: np.ndarray, role: int) -> np.ndarray:
    part = parts[:, role]
    return np.where(part[:, PART_ACTIVE].max(axis=1) > 0, part[:, PART_LOUDNESS].max(axis=1), -100.0)


def noncausal_loudness(model, frames: np.ndarray) -> np.ndarray:  # noqa: ANN001 (a LoudnessBaseline)
    """[n_frames, roles] loudness dB of the non-causal baseline over the whole recording: windows
    of CONTEXT_STEPS steps, half overlapping, each step's prediction taken from the window where
    it sits most centrally; a step's first bin covers frames trigger + L ... + BIN_FRAMES."""
    import torch

    inputs = song_inputs(frames).astype(np.float32)
    n_steps = len(inputs)
    predictions = np.zeros((n_steps, len(ROLES)))
    hop = CONTEXT_STEPS // 2
    starts = list(range(0, max(1, n_steps - CONTEXT_STEPS + 1), hop))
    if n_steps > CONTEXT_STEPS and starts[-1] != n_steps - CONTEXT_STEPS:
        starts.append(n_steps - CONTEXT_STEPS)
    with torch.no_grad():
        for start in starts:
            window = np.zeros((CONTEXT_STEPS, inputs.shape[1]), dtype=np.float32)
            chunk = inputs[start : start + CONTEXT_STEPS]
            window[: len(chunk)] = chunk
            out = model(torch.from_numpy(window)[None])[0, :, 0].numpy()
            first = 0 if start == 0 else hop // 2
            last = len(chunk) if start == starts[-1] else hop // 2 + hop
            predictions[start + first : start + last] = out[first:last]
    per_frame = np.full((len(frames), len(ROLES)), np.nan)
    for k in range(n_steps):
        begin = (k + 1) * STEP_FRAMES + LOOKAHEAD_FRAMES
        per_frame[begin : begin + PERIOD_FRAMES] = unscale_loudness(predictions[k])
    return per_frame


class Tally:
    """Sums over songs of every metric's counts and frame values."""

    def __init__(self) -> None:
        self.loudness: dict[str, dict[str, list[np.ndarray]]] = {}
        self.counts: dict[str, list[int]] = {}
        self.onsets: dict[str, OnsetTally] = {}

    def add_loudness(self, system: str, role: str, predicted: np.ndarray, truth: np.ndarray) -> None:
        entry = self.loudness.setdefault(system, {}).setdefault(role, [[], []])
        entry[0].append(predicted)
        entry[1].append(truth)

    def add_count(self, name: str, hits: int, judged: int) -> None:
        entry = self.counts.setdefault(name, [0, 0])
        entry[0] += hits
        entry[1] += judged

    def onset(self, name: str) -> OnsetTally:
        return self.onsets.setdefault(name, OnsetTally())

    def share(self, name: str) -> float:
        hits, judged = self.counts.get(name, (0, 0))
        return hits / judged if judged else float("nan")

    def loudness_summary(self, system: str) -> dict[str, Any]:
        roles = self.loudness.get(system, {})
        out = {role: loudness_scores(np.concatenate(p), np.concatenate(t)) for role, (p, t) in roles.items()}
        if roles:
            out["all"] = loudness_scores(np.concatenate([np.concatenate(p) for p, _ in roles.values()]),
                                         np.concatenate([np.concatenate(t) for _, t in roles.values()]))
        return out


def score_song(tally: Tally, recording: Recording, tracks: RoleTracks, loudness_fits: dict[str, tuple[float, float, float]],
               noncausal: np.ndarray | None) -> None:
    """Add one song's conductor and baseline numbers to `tally`."""
    n = len(recording.frames)
    leader_db = recording.frames[:, LOUDNESS]
    leader = _leader_pitch(recording.frames)
    for r, role in enumerate(ROLES):
        if role == "drums" or not tracks.present[role]:
            continue
        ours = _role_loudness(recording.parts, r)
        judged = (tracks.loudness_db[role][:n] > SOUNDING_DB) & (ours > -100.0)
        truth = tracks.loudness_db[role][:n][judged]
        tally.add_count(f"{role}_sounding_coverage", int(judged.sum()), int((tracks.loudness_db[role][:n] > SOUNDING_DB).sum()))
        slope, offset, mean = loudness_fits[role]
        tally.add_loudness("conductor", role, ours[judged], truth)
        tally.add_loudness("leader_loudness_scaled", role, (slope * leader_db + offset)[judged], truth)
        tally.add_loudness("role_mean_loudness", role, np.full(int(judged.sum()), mean), truth)
        if noncausal is not None:
            tally.add_loudness("noncausal_loudness_conductor", role, np.nan_to_num(noncausal[:n, r], nan=mean)[judged], truth)
        true_onsets = onset_times(tracks.onset[role][:n])
        tally.onset("conductor").add(onset_times(recording.parts[:, r, PART_ONSET].max(axis=1) > 0), true_onsets)
        tally.onset("beat_grid_onsets").add(onset_times(recording.beats), true_onsets)
        tally.onset("copied_leader_onsets").add(onset_times(leader_onsets(recording.frames)), true_onsets)
    if tracks.present["bass"]:
        truth = tracks.pitch["bass"][:n]
        tally.add_count("conductor_bass", *pitch_class_accuracy(_role_notes(recording.parts, 0)[:, 0], truth))
        tally.add_count("octave_leader_bass", *pitch_class_accuracy(np.where(leader >= 0, leader - 12, -1), truth))
        tonic = recording.key[:, 0].astype(np.int64)
        tally.add_count("tonic_bass", *pitch_class_accuracy(tonic, truth))
    chord = tracks.chord[:n]
    ours = np.concatenate([_role_notes(recording.parts, ROLES.index(role)) for role in PITCHED_ROLES], axis=1)
    tally.add_count("conductor_chord", *chord_tone_counts(ours, chord))
    rule = np.stack([np.where(leader >= 0, leader + int(LEADER_INTERVALS[role]), -1) for role in PITCHED_ROLES], axis=1)
    tally.add_count("leader_interval_chord", *chord_tone_counts(rule, chord))
    tally.add_count("leader_interval_bass", *pitch_class_accuracy(rule[:, 0], tracks.pitch["bass"][:n]) if tracks.present["bass"] else (0, 0))
    tonic, minor = recording.key[:, 0].astype(np.int64), recording.key[:, 1] > 0.5
    triad = np.stack([tonic, np.where(minor, tonic + 3, tonic + 4), tonic + 7], axis=1)
    tally.add_count("tonic_triad_chord", *chord_tone_counts(np.where(tonic[:, None] >= 0, triad, -1), chord))


def score_drums(tally: Tally, recording: Recording, tracks: RoleTracks) -> None:
    n = len(recording.frames)
    drums = ROLES.index("drums")
    tally.onset("conductor_drums").add(onset_times(recording.parts[:, drums, PART_ONSET].max(axis=1) > 0),
                                       onset_times(tracks.onset["drums"][:n]))


def _write_song_roll(folder: Path, song_id: str, recording: Recording, tracks: RoleTracks, seconds: float = 30.0) -> None:
    """The first `seconds` of a song as a piano roll, the true bass and counter-line beneath."""
    from gui.roll import leader_pitch, roll_from_parts, write_roll

    n = min(len(recording.frames), int(seconds / FRAME_S))
    pitches, onsets = roll_from_parts(recording.parts[:n], ROLES)
    truth = {role: np.where(tracks.pitch[role][:n, None] >= 0, tracks.pitch[role][:n, None], np.nan) for role in ("bass", "counter")}
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in song_id)
    write_roll(folder / f"{name}.png", FRAME_S, leader_pitch(recording.frames[:n]), pitches, onsets, song_id, truth)


def loudness_fits(songs: list[SongData]) -> dict[str, tuple[float, float, float]]:
    """Per role, from the training songs: (slope, offset) of the role's loudness on the leader's
    (least squares, the scaled-copy baseline) and the role's mean loudness (dB)."""
    fits = {}
    for role in PITCHED_ROLES:
        leader, truth = [], []
        for song in songs:
            mask = song.targets[f"{role}_loudness_mask"][:, 0] > 0
            leader.append(unscale_loudness(song.inputs[mask, 14].astype(np.float64)))
            truth.append(unscale_loudness(song.targets[f"{role}_loudness"][mask, 0].astype(np.float64)))
        x, y = np.concatenate(leader), np.concatenate(truth)
        if len(x) < 2:
            fits[role] = (1.0, 0.0, -30.0)
            continue
        slope, offset = np.polyfit(x, y, 1)
        fits[role] = (float(slope), float(offset), float(y.mean()))
    return fits


def _targets_met(report: dict[str, Any]) -> dict[str, Any]:
    c, b = report["conductor"], report["baselines"]
    ours = c["loudness"].get("all", {}).get("loudness_mae_db", math.nan)
    simple = min(b["leader_loudness_scaled"]["loudness"]["all"]["loudness_mae_db"],
                 b["role_mean_loudness"]["loudness"]["all"]["loudness_mae_db"])
    noncausal = b.get("noncausal_loudness_conductor", {}).get("loudness", {}).get("all", {}).get("loudness_mae_db", math.nan)
    bass_floor = max(b["tonic"]["bass_pitch_class_accuracy"], b["octave_leader"]["bass_pitch_class_accuracy"])
    onset_floor = max(b["beat_grid_onsets"]["onsets"]["onset_f1"], b["copied_leader_onsets"]["onsets"]["onset_f1"])
    return {
        "loudness_20pct_below_simple_baselines": ours <= 0.8 * simple,
        "bass_accuracy_0.15_above_tonic_and_octave": c["bass_pitch_class_accuracy"] >= bass_floor + 0.15,
        "chord_share_0.1_above_tonic_triad": c["chord_tone_share"] >= b["tonic_triad"]["chord_tone_share"] + 0.1,
        "onset_f1_above_baselines_and_0.6": c["onsets"]["onset_f1"] > onset_floor and c["onsets"]["onset_f1"] >= 0.6,
        "mean_asynchrony_within_30ms": abs(c["onsets"]["mean_asynchrony_ms"]) <= 30.0,
        "within_10pct_of_noncausal_loudness": ours <= 1.1 * noncausal if not math.isnan(noncausal) else None,
    }


def evaluate(model: Path, cache_dir: Path, base: TuttiConfig, *, baseline_run: Path | None, split: str = "test",
             max_seconds: float = 120.0, max_songs: int = 0, workers: int = 1, rolls_dir: Path | None = None) -> dict[str, Any]:
    """The report (a dict): the conductor and every baseline, pooled over the split's composed songs."""
    from engine.audio_io import read_mono

    from engine.models.conductor import load_conductor_info

    load_conductor_info(model)  # a missing or foreign model fails before any song is read
    config = role_config(base, model)
    records = {r["song_id"]: r for r in songs_of(cache_dir, split)}
    if not records:
        raise TuttiError(f"no {split} songs with a melody part under {cache_dir}: render more of the corpus")
    fits = loudness_fits(load_songs(cache_dir, "train", workers))
    baseline = None
    if baseline_run is not None:
        from training.conductor.train import load_model

        best = baseline_run / "best.pt"
        baseline, _, _ = load_model(best if best.is_file() else baseline_run / "last.pt")
    composed, generated = Tally(), Tally()
    songs_report = []
    chosen = [r for r in records.values() if not r.get("generated")][: max_songs or None]
    chosen += [r for r in records.values() if r.get("generated")][: max_songs or None]
    for record in chosen:
        parts, leader_path = song_parts(cache_dir, record)
        audio = read_mono(leader_path, config.engine.sample_rate_hz)[: int(max_seconds * config.engine.sample_rate_hz)]
        recording = perform_leader(audio, config)
        tracks = role_tracks(parts, len(recording.frames))
        if record.get("generated"):
            score_drums(generated, recording, tracks)
        else:
            noncausal = noncausal_loudness(baseline, recording.frames) if baseline is not None else None
            score_song(composed, recording, tracks, fits, noncausal)
        songs_report.append({"song_id": record["song_id"], "generated": bool(record.get("generated")),
                             "seconds": len(audio) / config.engine.sample_rate_hz, "engine_wall_s": recording.wall_s})
        if rolls_dir is not None:
            _write_song_roll(rolls_dir, record["song_id"], recording, tracks)
    c = composed
    report = {
        "kind": REPORT_KIND, "model": str(model), "split": split, "songs": songs_report,
        "settings": {"period_frames": PERIOD_FRAMES, "lookahead_frames": LOOKAHEAD_FRAMES, "bin_frames": BIN_FRAMES,
                     "nominal_device_latency_s": NOMINAL_DEVICE_LATENCY_S, "block_samples": config.engine.block_samples,
                     "max_seconds_per_song": max_seconds, "onset_tolerance_s": 0.05},
        "conductor": {"loudness": c.loudness_summary("conductor"),
                      "bass_pitch_class_accuracy": c.share("conductor_bass"),
                      "chord_tone_share": c.share("conductor_chord"),
                      "onsets": c.onset("conductor").summary(),
                      "sounding_coverage": {role: c.share(f"{role}_sounding_coverage") for role in PITCHED_ROLES},
                      "drums_onsets_generated_songs": generated.onset("conductor_drums").summary()},
        "baselines": {
            "leader_loudness_scaled": {"loudness": c.loudness_summary("leader_loudness_scaled"), "fits": fits},
            "role_mean_loudness": {"loudness": c.loudness_summary("role_mean_loudness")},
            "octave_leader": {"bass_pitch_class_accuracy": c.share("octave_leader_bass")},
            "leader_interval_rule": {"bass_pitch_class_accuracy": c.share("leader_interval_bass"),
                                     "chord_tone_share": c.share("leader_interval_chord")},
            "tonic": {"bass_pitch_class_accuracy": c.share("tonic_bass")},
            "tonic_triad": {"chord_tone_share": c.share("tonic_triad_chord")},
            "beat_grid_onsets": {"onsets": c.onset("beat_grid_onsets").summary()},
            "copied_leader_onsets": {"onsets": c.onset("copied_leader_onsets").summary()},
        },
    }
    if baseline is not None:
        report["baselines"]["noncausal_loudness_conductor"] = {"loudness": c.loudness_summary("noncausal_loudness_conductor")}
    report["targets_met"] = _targets_met(report)
    return report


def write_report(report: dict[str, Any], out: Path) -> None:
    atomic_write_text(out, json.dumps(report, indent=1, default=float) + "\n")
