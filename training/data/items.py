"""The one item type every loader returns, note labels' dtype, and the split by song id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = ("slakh", "babyslakh", "tutti", "lsx", "urmp", "essen")  # layouts training/data/loaders reads
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
# One row per note: onset and offset in seconds, MIDI pitch (drum key on the drum channel), velocity.
NOTE_DTYPE = np.dtype([("onset_s", "<f8"), ("offset_s", "<f8"), ("pitch", "<i2"), ("velocity", "<i2")])


@dataclass(frozen=True)
class Stem:
    """One part of a song: its audio (None for symbolic-only data) and what plays it.

    `name` is unique within the song ("S01", "bass", "2_vn"); `role` is one of `gm.ROLES` or
    "other"; `inst_class` and `program_num` follow GM/Slakh (-1: unknown program); `source` is
    "composed" or "generated" (accompaniment the project made by rule). `midi_path` holds this
    stem's notes, `notes_path`/`f0_path` URMP's note and f0 annotations.
    """

    name: str
    role: str
    inst_class: str
    program_num: int
    is_drum: bool
    source: str
    audio_path: Path | None
    midi_path: Path | None = None
    notes_path: Path | None = None
    f0_path: Path | None = None


@dataclass(frozen=True)
class SongItem:
    """One song of one dataset. `song_id` is unique across datasets ("slakh/Track00001").

    `mix_path` is None where the dataset ships no mix (the cache then sums the stems);
    `score_path`/`score_number` locate a symbolic song (an Essen kern file, or tune X: in abc).
    """

    dataset: str
    song_id: str
    split: str
    stems: tuple[Stem, ...]
    mix_path: Path | None = None
    score_path: Path | None = None
    score_number: int | None = None

    @property
    def audio_paths(self) -> tuple[Path, ...]:
        """Every audio file of the item, stems first then the mix."""
        paths = [stem.audio_path for stem in self.stems if stem.audio_path is not None]
        return tuple(paths + ([self.mix_path] if self.mix_path is not None else []))


@dataclass(frozen=True)
class Skip:
    """A song left out, with a one-line reason (it goes to the manifest and the summary)."""

    song_id: str
    reason: str


def stable_unit(text: str) -> float:
    """A number in [0, 1) fixed by `text` alone (sha256, not Python's salted `hash`)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def split_for(song_id: str) -> str:
    """train/val/test by a hash of the song id (80/10/10), so a song never straddles splits."""
    position = stable_unit(song_id)
    edge = 0.0
    for split, fraction in zip(SPLITS, SPLIT_FRACTIONS):
        edge += fraction
        if position < edge:
            return split
    return SPLITS[-1]


def stable_seed(seed: int, song_id: str) -> int:
    """A per-song RNG seed derived from the run's seed and the song id."""
    return int(stable_unit(f"{seed}:{song_id}") * 2**63)
