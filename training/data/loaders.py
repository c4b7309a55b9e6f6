"""Loaders for the published datasets, each in its exact layout, all returning `SongItem`s.

- Slakh2100 (`{train,validation,test}/TrackNNNNN/`) and BabySlakh (`TrackNNNNN/` at the root):
  `metadata.yaml`, `stems/Syy.{flac,wav}`, `MIDI/Syy.mid`, `mix.{flac,wav}`, `all_src.mid`.
  The corpus Tutti renders uses this layout too, with `role`, `source` and `split` added.
- LSX: `{tr,cv,tt}/SONG/{bass,drums,guitar,piano}.wav` (+ an optional `mix.wav`).
- URMP: `NN_Piece_inst.../AuSep_<n>_<inst>_NN_Piece.wav` + `F0s_...txt` + `Notes_...txt`,
  `AuMix_....wav`; each stem is named `<n>_<inst>`, unique within its piece.
- Essen: `*.krn` (one song a file) and `*.abc` (one song per `X:` tune), anywhere below the root.

A loader pointed at a folder without its layout raises `TuttiError` naming what it expected;
a single broken song becomes a `Skip` with its reason, and the rest loads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml

from engine.errors import TuttiError
from training.data import gm
from training.data.items import DATASETS, SPLITS, Skip, SongItem, Stem, split_for

AUDIO_SUFFIXES = (".flac", ".wav")
SLAKH_SPLIT_DIRS = {"train": "train", "validation": "val", "test": "test"}
LSX_SPLIT_DIRS = {"tr": "train", "cv": "val", "tt": "test"}
LSX_STEMS = {  # name: (role, inst_class, program_num, is_drum)
    "bass": ("bass", "Bass", -1, False),
    "drums": ("drums", gm.DRUM_CLASS, -1, True),
    "guitar": ("harmony", "Guitar", -1, False),
    "piano": ("harmony", "Piano", -1, False),
}
URMP_INSTRUMENTS = {  # URMP abbreviation: GM program
    "vn": 40, "va": 41, "vc": 42, "db": 43, "fl": 73, "ob": 68, "cl": 71, "sax": 65, "bn": 70,
    "tpt": 56, "hn": 60, "tbn": 57, "tba": 58,
}
URMP_LOW = {"vc", "db", "bn", "tbn", "tba"}
_URMP_PIECE = re.compile(r"^\d+_[^_]+_[a-z_]+$")
_URMP_STEM = re.compile(r"^AuSep_(\d+)_([a-z]+)_(.+)\.wav$")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,63}")  # a stem name is a plain file name
_ABC_TUNE = re.compile(r"^X:[ \t]*([0-9]{1,9})(?![0-9])", re.MULTILINE)  # a longer number is no tune

LoadResult = tuple[list[SongItem], list[Skip]]


def _audio_file(folder: Path, stem_name: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        path = folder / f"{stem_name}{suffix}"
        if path.is_file():
            return path
    return None


def _read_metadata(track: Path) -> tuple[dict, dict]:
    """The track's metadata.yaml and its `stems` table; TuttiError (one line) when unusable."""
    try:
        metadata = yaml.safe_load((track / "metadata.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())
        raise TuttiError(f"metadata.yaml is unreadable ({type(err).__name__}: {reason})") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("stems"), dict):
        raise TuttiError("metadata.yaml has no 'stems' table")
    return metadata, metadata["stems"]


def _stem_table(name: str, meta: object) -> dict:
    """One stem's metadata table, its program_num checked; TuttiError when garbled."""
    meta = {} if meta is None else meta
    program = meta.get("program_num", -1) if isinstance(meta, dict) else None
    if isinstance(program, bool) or not isinstance(program, int) or not -1 <= program <= 128:
        raise TuttiError(f"metadata.yaml: stem {name} has no usable table (program_num {program!r}, expected -1..128)")
    return meta


def _slakh_track(track: Path, dataset: str, folder_split: str | None) -> SongItem:
    """One Slakh-layout track; raises TuttiError when its metadata is unusable."""
    metadata, stems_meta = _read_metadata(track)
    song_id = str(metadata.get("song_id") or f"{dataset}/{track.name}")  # a rendered track names its score
    stems = []
    named = {str(name): meta for name, meta in stems_meta.items()}
    for name in sorted(named):
        if not _SAFE_NAME.fullmatch(name):
            raise TuttiError(f"metadata.yaml names a stem {name!r}: stem names are file names like S00")
        audio = _audio_file(track / "stems", name)
        if audio is None:  # Slakh leaves stems it did not render (audio_rendered: false) out
            continue
        meta = _stem_table(name, named[name])
        is_drum = bool(meta.get("is_drum", False))
        program = meta.get("program_num", -1)
        inst_class = str(meta.get("inst_class") or gm.program_class(min(max(program, 0), 127), is_drum))
        midi = track / "MIDI" / f"{name}.mid"
        stems.append(Stem(
            name=name, role=str(meta.get("role") or gm.role_for_class(inst_class, is_drum)),
            inst_class=inst_class, program_num=program, is_drum=is_drum,
            source=str(meta.get("source", "composed")), audio_path=audio,
            midi_path=midi if midi.is_file() else None,
        ))
    if not stems:
        raise TuttiError("no stem audio under stems/ (expected Syy.flac or Syy.wav)")
    split = folder_split or metadata.get("split")
    split = split if split in SPLITS else split_for(song_id)
    return SongItem(dataset, song_id, split, tuple(stems), mix_path=_audio_file(track, "mix"))


def load_slakh(root: Path, dataset: str = "slakh") -> LoadResult:
    """Slakh2100 (split folders), BabySlakh or a Tutti-rendered corpus (tracks at the root)."""
    tracks = [(track, None) for track in sorted(root.glob("Track*")) if (track / "metadata.yaml").is_file()]
    for folder, split in SLAKH_SPLIT_DIRS.items():
        tracks += [(t, split) for t in sorted((root / folder).glob("Track*")) if (t / "metadata.yaml").is_file()]
    if not tracks:
        raise TuttiError(
            f"{root} holds no Slakh tracks: expected TrackNNNNN/metadata.yaml with stems/Syy.flac "
            "(BabySlakh, a rendered corpus) or train|validation|test/TrackNNNNN/... (Slakh2100)"
        )
    items, skipped = [], []
    for track, split in tracks:
        try:
            items.append(_slakh_track(track, dataset, split))
        except TuttiError as err:
            skipped.append(Skip(f"{dataset}/{track.name}", str(err)))
    return items, skipped


def load_lsx(root: Path) -> LoadResult:
    """LSX: tr/cv/tt split folders, one folder per song with bass/drums/guitar/piano.wav."""
    items, skipped = [], []
    for folder, split in LSX_SPLIT_DIRS.items():
        for song in sorted(p for p in (root / folder).glob("*") if p.is_dir()):
            stems = tuple(
                Stem(name, role, inst_class, program, is_drum, "composed", song / f"{name}.wav")
                for name, (role, inst_class, program, is_drum) in LSX_STEMS.items()
                if (song / f"{name}.wav").is_file()
            )
            song_id = f"lsx/{folder}/{song.name}"
            if stems:
                items.append(SongItem("lsx", song_id, split, stems, mix_path=_audio_file(song, "mix")))
            else:
                skipped.append(Skip(song_id, "no bass/drums/guitar/piano.wav in the song folder"))
    if not items and not skipped:
        raise TuttiError(
            f"{root} holds no LSX songs: expected tr/, cv/ and tt/ folders, each with one folder "
            "per song holding bass.wav, drums.wav, guitar.wav and piano.wav"
        )
    return items, skipped


def _urmp_piece(piece: Path) -> SongItem:
    found = sorted((int(m[1]), m[2], m[3]) for p in piece.glob("AuSep_*.wav") if (m := _URMP_STEM.match(p.name)))
    stems = []
    for number, inst, rest in found:
        program = URMP_INSTRUMENTS.get(inst, -1)
        is_last_low = number == found[-1][0] and number > 1 and inst in URMP_LOW
        notes, f0 = piece / f"Notes_{number}_{inst}_{rest}.txt", piece / f"F0s_{number}_{inst}_{rest}.txt"
        stems.append(Stem(
            name=f"{number}_{inst}",
            role="melody" if number == 1 else "bass" if is_last_low else "counter",
            inst_class=gm.program_class(program) if program >= 0 else "",
            program_num=program, is_drum=False, source="composed",
            audio_path=piece / f"AuSep_{number}_{inst}_{rest}.wav",
            notes_path=notes if notes.is_file() else None, f0_path=f0 if f0.is_file() else None,
        ))
    song_id = f"urmp/{piece.name}"
    return SongItem("urmp", song_id, split_for(song_id), tuple(stems), mix_path=_audio_file(piece, f"AuMix_{piece.name}"))


def load_urmp(root: Path) -> LoadResult:
    """URMP: one folder per piece (`NN_Piece_inst...`), at the root or under `Dataset/`."""
    base = root / "Dataset" if (root / "Dataset").is_dir() else root
    pieces = sorted(p for p in base.glob("*") if p.is_dir() and _URMP_PIECE.match(p.name) and any(p.glob("AuSep_*.wav")))
    if not pieces:
        raise TuttiError(
            f"{root} holds no URMP pieces: expected folders like 01_Jupiter_vn_vc/ holding "
            "AuSep_<n>_<inst>_<NN>_<piece>.wav, F0s_<n>_<inst>_<NN>_<piece>.txt and AuMix_<folder>.wav"
        )
    return [_urmp_piece(piece) for piece in pieces], []


def abc_tune_numbers(path: Path) -> list[int]:
    """The `X:` reference numbers of an abc file, in order."""
    return [int(n) for n in _ABC_TUNE.findall(path.read_text(errors="replace"))]


def _essen_item(root: Path, path: Path, number: int | None) -> SongItem:
    song_id = f"essen/{path.relative_to(root).with_suffix('').as_posix()}" + (f"#{number}" if number is not None else "")
    melody = Stem("melody", "melody", "", -1, False, "composed", audio_path=None)
    return SongItem("essen", song_id, split_for(song_id), (melody,), score_path=path, score_number=number)


def load_essen(root: Path) -> LoadResult:
    """Essen folk songs: every `*.krn` file and every `X:` tune of every `*.abc` file below root."""
    items = [_essen_item(root, path, None) for path in sorted(root.rglob("*.krn"))]
    for path in sorted(root.rglob("*.abc")):
        items += [_essen_item(root, path, number) for number in abc_tune_numbers(path)]
    if not items:
        raise TuttiError(
            f"{root} holds no Essen songs: expected kern files (*.krn, e.g. europa/deutschl/"
            "allerkbd/deut0567.krn) or abc files (*.abc with X: tunes) anywhere below it"
        )
    return items, []


LOADERS: dict[str, Callable[[Path], LoadResult]] = {
    "slakh": load_slakh,
    "babyslakh": lambda root: load_slakh(root, "babyslakh"),
    "tutti": lambda root: load_slakh(root, "tutti"),
    "lsx": load_lsx,
    "urmp": load_urmp,
    "essen": load_essen,
}

assert tuple(LOADERS) == DATASETS


def load_dataset(name: str, root: Path) -> LoadResult:
    """Items and skips of dataset `name` (a key of LOADERS) found under `root`."""
    if name not in LOADERS:
        raise TuttiError(f"unknown dataset {name!r}: choose one of {', '.join(LOADERS)}")
    if not root.is_dir():
        raise TuttiError(f"dataset folder {root} does not exist: check --root")
    return LOADERS[name](root)
