"""Tiny datasets in their exact published layouts, for the data tests (a few seconds of audio).

Each `make_*` writes under `root` and returns it. Audio is a seeded tone per stem at 16 kHz;
MIDI is written with mido; scores are kern and abc text small enough to render in a second.
"""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import soundfile as sf
import yaml

RATE_HZ = 16000
DURATION_S = 1.0
# (onset s, offset s, pitch, velocity) of the notes each Slakh fixture stem's MIDI holds.
STEM_NOTES = [(0.0, 0.4, 60, 90), (0.5, 0.9, 64, 70)]

TINY_KERN = """**kern\t**kern
*clefF4\t*clefG2
*M4/4\t*M4/4
=1\t=1
4C\t4c
4G\t4e
4E\t4g
4C\t4cc
=2\t=2
1C\t1c
==\t==
*-\t*-
"""
TINY_ABC = """X:1
T:Tiny waltz
M:3/4
L:1/4
K:G
G A B | c B A | G3 |]

X:2
T:Tiny march
M:2/4
L:1/8
K:D
d2 f2 | a2 f2 | d4 |]
"""


def tone(f0_hz: float, *, duration_s: float = DURATION_S, rate_hz: int = RATE_HZ, seed: int = 0) -> np.ndarray:
    """A quiet harmonic tone with a little seeded noise, float64."""
    t = np.arange(int(round(duration_s * rate_hz))) / rate_hz
    rng = np.random.default_rng(seed)
    return 0.2 * np.sin(2 * np.pi * f0_hz * t) + 0.05 * np.sin(4 * np.pi * f0_hz * t) + 0.001 * rng.standard_normal(len(t))


def write_audio(path: Path, audio: np.ndarray, rate_hz: int = RATE_HZ) -> Path:
    """16-bit WAV or FLAC by the path's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate_hz, subtype="PCM_16")
    return path


def write_notes_midi(path: Path, notes: list[tuple[float, float, int, int]], channel: int = 0, program: int = 0) -> Path:
    """A one-track MIDI file at 120 qpm (480 ticks a beat: 960 ticks a second)."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.Message("program_change", channel=channel, program=program, time=0)])
    events = sorted([(on, 1, p, v) for on, _, p, v in notes] + [(off, 0, p, 0) for _, off, p, _ in notes])
    now = 0
    for time_s, is_on, pitch, velocity in events:
        tick = int(round(time_s * 960))
        track.append(mido.Message("note_on" if is_on else "note_off", channel=channel, note=pitch, velocity=velocity, time=tick - now))
        now = tick
    midi.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


def make_slakh_track(track: Path, *, suffix: str = ".flac", rate_hz: int = RATE_HZ) -> Path:
    """One Slakh track: S00 piano, S01 bass, S02 drums, and S03 listed but not rendered."""
    stems = {
        "S00": {"inst_class": "Piano", "is_drum": False, "midi_program_name": "Acoustic Grand Piano", "program_num": 0, "f0": 262.0},
        "S01": {"inst_class": "Bass", "is_drum": False, "midi_program_name": "Electric Bass (finger)", "program_num": 33, "f0": 82.0},
        "S02": {"inst_class": "Drums", "is_drum": True, "midi_program_name": "Drums", "program_num": 0, "f0": 200.0},
        "S03": {"inst_class": "Guitar", "is_drum": False, "midi_program_name": "Distortion Guitar", "program_num": 30, "f0": 0.0},
    }
    mix = np.zeros(int(DURATION_S * rate_hz))
    metadata_stems = {}
    for index, (name, meta) in enumerate(stems.items()):
        rendered = meta["f0"] > 0
        metadata_stems[name] = {
            "audio_rendered": rendered, "inst_class": meta["inst_class"], "is_drum": meta["is_drum"],
            "midi_program_name": meta["midi_program_name"], "midi_saved": True,
            "plugin_name": "fixture.nkm", "program_num": meta["program_num"],
        }
        write_notes_midi(track / "MIDI" / f"{name}.mid", STEM_NOTES, channel=9 if meta["is_drum"] else 0, program=meta["program_num"])
        if rendered:
            audio = tone(meta["f0"], rate_hz=rate_hz, seed=index)
            write_audio(track / "stems" / f"{name}{suffix}", audio, rate_hz)
            mix += audio
    write_audio(track / f"mix{suffix}", mix / 2, rate_hz)
    write_notes_midi(track / "all_src.mid", STEM_NOTES)
    (track / "metadata.yaml").write_text(yaml.safe_dump({
        "UUID": "0" * 32, "audio_dir": "stems", "midi_dir": "MIDI", "normalization_factor": -13.0,
        "normalized": True, "overall_gain": 0.5, "target_peak": -1.0, "stems": metadata_stems,
    }))
    return track


def make_babyslakh(root: Path, n_tracks: int = 2, suffix: str = ".wav") -> Path:
    """BabySlakh: babyslakh_16k/TrackNNNNN/ at the root, WAV stems at 16 kHz."""
    for number in range(1, n_tracks + 1):
        make_slakh_track(root / f"Track{number:05d}", suffix=suffix)
    return root


def make_slakh2100(root: Path) -> Path:
    """Slakh2100 (flac redux): train/, validation/, test/ and omitted/ split folders."""
    for number, split in enumerate(("train", "validation", "test", "omitted"), start=1):
        make_slakh_track(root / split / f"Track{number:05d}")
    return root


def make_lsx(root: Path) -> Path:
    """LSX: tr/cv/tt, one folder per song with bass/drums/guitar/piano.wav (tt's song lacks guitar)."""
    for split, song in (("tr", "Track00001"), ("cv", "Track00002"), ("tt", "Track00003")):
        for index, (name, f0) in enumerate((("bass", 82.0), ("drums", 200.0), ("guitar", 196.0), ("piano", 262.0))):
            if not (split == "tt" and name == "guitar"):
                write_audio(root / split / song / f"{name}.wav", tone(f0, seed=index))
    return root


def make_urmp(root: Path) -> Path:
    """URMP: Dataset/NN_Piece_inst.../ with AuSep, F0s, Notes, AuMix and Sco files; piece 02 has
    two violins, whose stems must keep distinct names."""
    for piece, instruments in (("01_Jupiter", ("vn", "vc")), ("02_Sonata", ("vn", "vn"))):
        folder = root / "Dataset" / f"{piece}_{'_'.join(instruments)}"
        mix = np.zeros(int(DURATION_S * RATE_HZ))
        for number, inst in enumerate(instruments, start=1):
            f0_hz = 440.0 / number
            audio = tone(f0_hz, seed=number)
            write_audio(folder / f"AuSep_{number}_{inst}_{piece}.wav", audio)
            mix += audio
            times = np.arange(0, DURATION_S, 0.005)
            np.savetxt(folder / f"F0s_{number}_{inst}_{piece}.txt", np.column_stack([times, np.full_like(times, f0_hz)]), fmt="%.4f", delimiter="\t")
            (folder / f"Notes_{number}_{inst}_{piece}.txt").write_text(f"0.1000\t {f0_hz:.3f}\t 0.8000\n")
        write_audio(folder / f"AuMix_{folder.name}.wav", mix / 2)
        write_notes_midi(folder / f"Sco_{folder.name}.mid", STEM_NOTES)
    return root


def make_essen(root: Path) -> Path:
    """Essen: a kern song in the europa/deutschl tree and an abc file of two tunes."""
    kern = root / "europa" / "deutschl" / "kinder" / "deut0001.krn"
    kern.parent.mkdir(parents=True, exist_ok=True)
    kern.write_text(TINY_KERN)
    (root / "abc").mkdir(parents=True, exist_ok=True)
    (root / "abc" / "tiny.abc").write_text(TINY_ABC)
    return root


def tiny_plan(root: Path):
    """Render plan of three tiny scores: a two-part kern (composed) and two abc tunes (melody only)."""
    from training.data.render import ScoreRef

    essen = make_essen(root)
    kern = essen / "europa" / "deutschl" / "kinder" / "deut0001.krn"
    abc = essen / "abc" / "tiny.abc"
    return [
        ScoreRef("fixture/kern", kern, None, "chorale"),
        ScoreRef("fixture/abc#1", abc, 1, "essen"),
        ScoreRef("fixture/abc#2", abc, 2, "essen"),
    ]
