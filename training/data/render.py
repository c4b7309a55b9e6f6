"""The default corpus: music21's bundled scores rendered by FluidSynth in Slakh's layout.

`corpus_plan` lists the scores (Bach chorales, string quartets, Palestrina masses, Essen tunes)
interleaved by kind, so a short `--max-hours` run still gets every kind. `render_track` turns
one score into `TrackNNNNN/` (DESIGN.md section 8):

    stems/Syy.flac   16-bit FLAC at the training rate, one per part (the mix is their sum)
    mix.flac         the sum of the stems, peak -6 dBFS
    MIDI/Syy.mid     each part's humanised notes (the exact labels of its audio)
    all_src.mid      every part, one track and channel each (drums on channel 10)
    metadata.yaml    Slakh's keys per stem plus `role` and `source` (composed or generated)

Each MIDI's length is checked before FluidSynth runs, and FluidSynth runs under a timeout: a
MIDI file with a broken tempo map once rendered for hours here (DESIGN.md section 11). The
track is built in `TrackNNNNN.partial/` and renamed when complete, so a killed run leaves no
half track behind. A bad score becomes a skipped record with a one-line reason.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mido
import numpy as np
import soundfile as sf
import yaml

from engine.errors import TuttiError
from engine.safe_files import atomic_path, atomic_write_text
from training.data import gm
from training.data.executors import worker_identity
from training.data.items import split_for, stable_seed
from training.data.manifest import Record, content_hash
from training.data.scores import PartPlan, arrange, parse_score

DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
MAX_MIDI_S = 2400.0  # 40 min: longer than any score in the corpus, so a longer MIDI has a broken tempo map
TAIL_S = 1.0  # silence after the last note-off, for release tails
MIX_PEAK = 0.5  # -6 dBFS
TICKS_PER_BEAT = 960
MIDI_TEMPO_US = 500_000  # 120 qpm: 1920 ticks a second
CORPUS_KINDS = {  # kind: (music21 corpus folders, file suffix, file name prefix)
    "chorale": (("bach",), ".mxl", "bwv"),
    "quartet": (("beethoven", "haydn", "mozart"), ".mxl", ""),
    "palestrina": (("palestrina",), ".krn", ""),
    "essen": (("essenFolksong",), ".abc", ""),
}


@dataclass(frozen=True)
class ScoreRef:
    """One score of the plan: `path` (tune `number` of an abc file) of `kind` (CORPUS_KINDS)."""

    song_id: str
    path: Path
    number: int | None
    kind: str


@dataclass(frozen=True)
class RenderSettings:
    """What every track of a render shares."""

    out_dir: Path
    sample_rate_hz: int = 16000
    seed: int = 0
    soundfont: Path = DEFAULT_SOUNDFONT
    max_midi_s: float = MAX_MIDI_S
    fluidsynth: str = "fluidsynth"


def corpus_plan() -> list[ScoreRef]:
    """Every score of the default corpus, interleaved by kind (chorale, quartet, palestrina, essen)."""
    from music21 import common

    from training.data.loaders import abc_tune_numbers

    root = Path(common.getCorpusFilePath())
    by_kind: list[list[ScoreRef]] = []
    for kind, (folders, suffix, prefix) in CORPUS_KINDS.items():
        refs = []
        for folder in folders:
            for path in sorted((root / folder).rglob(f"{prefix}*{suffix}")):
                song_id = f"music21/{path.relative_to(root).with_suffix('').as_posix()}"
                if kind != "essen":
                    refs.append(ScoreRef(song_id, path, None, kind))
                elif not path.name.startswith("test"):  # music21's parser test files
                    refs += [ScoreRef(f"{song_id}#{n}", path, n, kind) for n in abc_tune_numbers(path)]
        by_kind.append(refs)
    return [ref for group in _round_robin(by_kind) for ref in group]


def _round_robin(groups: list[list[ScoreRef]]) -> list[list[ScoreRef]]:
    """Round-robin rows: the i-th score of every kind that has one."""
    return [[g[i] for g in groups if i < len(g)] for i in range(max(map(len, groups), default=0))]


def track_name(index: int) -> str:
    """Slakh's track folder name for plan position `index` (0-based): Track00001, ..."""
    return f"Track{index + 1:05d}"


def write_midi(path: Path, parts: list[tuple[PartPlan, int]]) -> None:
    """A type-1 MIDI file: one track per (part, channel), the program set at time 0, at 120 qpm."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    ticks_per_s = TICKS_PER_BEAT * 1_000_000 / MIDI_TEMPO_US
    end_tick = 0
    for part, channel in parts:
        events = [(int(round(n["onset_s"] * ticks_per_s)), 1, int(n["pitch"]), int(n["velocity"])) for n in part.notes]
        events += [(int(round(n["offset_s"] * ticks_per_s)), 0, int(n["pitch"]), 0) for n in part.notes]
        events.sort()  # note-offs before note-ons at the same tick
        end_tick = max(end_tick, events[-1][0] if events else 0)
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=part.name, time=0)])
        if not part.is_drum:
            track.append(mido.Message("program_change", channel=channel, program=part.program_num, time=0))
        now = 0
        for tick, is_on, pitch, velocity in events:
            kind = "note_on" if is_on else "note_off"
            track.append(mido.Message(kind, channel=channel, note=pitch, velocity=velocity, time=tick - now))
            now = tick
        midi.tracks.append(track)
    tail = int(TAIL_S * ticks_per_s)
    midi.tracks.insert(0, mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO_US, time=0)]))
    for track in midi.tracks:  # every track ends together, TAIL_S after the last note-off
        track.append(mido.MetaMessage("end_of_track", time=end_tick + tail - sum(m.time for m in track)))
    with atomic_path(path) as temporary:
        midi.save(str(temporary))


def channels_for(parts: list[PartPlan]) -> list[int]:
    """A MIDI channel per part: drums on channel 10 (9), the others in turn around it."""
    melodic = [c for c in range(16) if c != gm.DRUM_CHANNEL]
    channels, next_index = [], 0
    for part in parts:
        if part.is_drum:
            channels.append(gm.DRUM_CHANNEL)
        else:
            channels.append(melodic[next_index % len(melodic)])
            next_index += 1
    return channels


def render_midi(midi_path: Path, settings: RenderSettings) -> np.ndarray:
    """Mono float32 audio of `midi_path` at the training rate: FluidSynth under a timeout."""
    length_s = mido.MidiFile(str(midi_path)).length
    if not 0 < length_s <= settings.max_midi_s:
        raise TuttiError(f"MIDI length {length_s:.0f} s is outside 0..{settings.max_midi_s:.0f} s: the tempo map is broken")
    wav = midi_path.with_suffix(".render.wav")
    command = [
        settings.fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5",
        "-o", "synth.dynamic-sample-loading=1", "-r", str(settings.sample_rate_hz),
        "-O", "float", "-T", "wav", "-F", str(wav), str(settings.soundfont), str(midi_path),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30 + length_s)
    except subprocess.TimeoutExpired:
        raise TuttiError(f"FluidSynth did not finish {midi_path.name} within {30 + length_s:.0f} s") from None
    except FileNotFoundError:
        raise TuttiError("fluidsynth is not installed: apt-get install fluidsynth fluid-soundfont-gm") from None
    if result.returncode != 0 or not wav.is_file():
        raise TuttiError(f"FluidSynth failed on {midi_path.name}: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    audio, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    wav.unlink()
    return audio.mean(axis=1)


def _write_flac(path: Path, audio: np.ndarray, sample_rate_hz: int) -> None:
    """16-bit FLAC, written atomically."""
    with atomic_path(path) as temporary:
        sf.write(str(temporary), audio, sample_rate_hz, subtype="PCM_16", format="FLAC")


def _render_into(folder: Path, ref: ScoreRef, settings: RenderSettings) -> Record:
    """Build the whole track in `folder`; the record fields of a rendered track."""
    if not settings.soundfont.is_file():
        raise TuttiError(f"soundfont {settings.soundfont} is missing: apt-get install fluid-soundfont-gm")
    rng = np.random.default_rng(stable_seed(settings.seed, ref.song_id))
    parts, tempo_qpm = arrange(parse_score(ref.path, ref.number), ref.kind, rng)
    (folder / "stems").mkdir(parents=True)
    (folder / "MIDI").mkdir()
    names = [f"S{i:02d}" for i in range(len(parts))]
    channels = channels_for(parts)
    write_midi(folder / "all_src.mid", list(zip(parts, channels)))
    audio = []
    for name, part, channel in zip(names, parts, channels):
        write_midi(folder / "MIDI" / f"{name}.mid", [(part, channel)])
        audio.append(render_midi(folder / "MIDI" / f"{name}.mid", settings))
    stems = np.zeros((len(audio), max(map(len, audio))), dtype=np.float64)
    for row, signal in zip(stems, audio):
        row[: len(signal)] = signal
    mix = stems.sum(axis=0)
    peak = float(np.max(np.abs(mix)))
    if peak <= 0:
        raise TuttiError("FluidSynth rendered silence")
    gain = min(MIX_PEAK / peak, 0.99 / float(np.max(np.abs(stems))))
    files = []
    for name, signal in zip(names, stems):
        files.append(folder / "stems" / f"{name}.flac")
        _write_flac(files[-1], signal * gain, settings.sample_rate_hz)
    files.append(folder / "mix.flac")
    _write_flac(files[-1], mix * gain, settings.sample_rate_hz)
    stem_meta = {
        name: {
            "audio_rendered": True, "midi_saved": True, "plugin_name": settings.soundfont.name,
            "program_num": part.program_num, "is_drum": part.is_drum,
            "inst_class": gm.program_class(part.program_num, part.is_drum),
            "midi_program_name": gm.program_name(part.program_num, part.is_drum),
            "role": part.role, "source": part.source, "part_name": part.name,
        }
        for name, part in zip(names, parts)
    }
    split = split_for(ref.song_id)
    metadata = {
        "UUID": ref.song_id, "song_id": ref.song_id, "origin": f"music21 corpus {ref.path.name}" + (f" X:{ref.number}" if ref.number else ""),
        "kind": ref.kind, "split": split, "seed": settings.seed, "tempo_qpm": round(tempo_qpm, 3),
        "audio_dir": "stems", "midi_dir": "MIDI", "normalized": True, "overall_gain": round(float(gain), 6),
        "target_peak": round(float(20 * np.log10(MIX_PEAK)), 2), "sample_rate_hz": settings.sample_rate_hz, "stems": stem_meta,
    }
    atomic_write_text(folder / "metadata.yaml", yaml.safe_dump(metadata, sort_keys=False))
    return {
        "duration_s": stems.shape[1] / settings.sample_rate_hz, "split": split, "tempo_qpm": tempo_qpm,
        "content_hash": content_hash(files),
        "stems": [{"name": name, **{k: stem_meta[name][k] for k in ("role", "source", "program_num", "inst_class", "is_drum")}} for name in names],
        "generated": any(part.source == "generated" for part in parts),
    }


def render_track(job: tuple[str, ScoreRef, RenderSettings]) -> Record:
    """Task: render one score into `out_dir/<track>`; a manifest record, ok or skipped with a reason."""
    track, ref, settings = job
    started = time.perf_counter()
    partial = settings.out_dir / f"{track}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed run
    record: dict[str, Any] = {
        "song_id": ref.song_id, "dataset": "tutti", "track": track, "kind": ref.kind, "seed": settings.seed,
        "origin": f"{ref.path.name}" + (f"#{ref.number}" if ref.number else ""),
        "sample_rate_hz": settings.sample_rate_hz,
    }
    try:
        record |= _render_into(partial, ref, settings) | {"status": "ok", "reason": None}
    except (TuttiError, OSError, ValueError, EOFError) as err:
        shutil.rmtree(partial, ignore_errors=True)
        record |= {"status": "skipped", "reason": " ".join(str(err).split()) or type(err).__name__}
    else:
        final = settings.out_dir / track
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
    return record | {"worker": worker_identity(), "task_s": time.perf_counter() - started}
