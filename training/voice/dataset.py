"""Training windows for instrument voices: the engine's cached causal features of a stem as
input, the stem's own audio as target (DESIGN.md sections 5 and 8).

Only stems whose note labels are monophonic (no two notes sounding together, beyond a short
legato overlap) train a voice. A stem's instrument comes from its GM class (`VOICE_CLASSES`).
f0 is the cached f0 where voicing >= 0.5, else 0; frame k of the features drives samples
[k * F, (k + 1) * F) of the target, as the live voice renders the frame after each step.
Windows are drawn by a generator seeded with (seed, step), so a resumed run sees the same
batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio_io import read_mono
from engine.errors import TuttiError
from engine.features.frames import F0, LOUDNESS, VOICING
from engine.rates import frame_samples
from training.data.cache import load_features, song_folder
from training.data.manifest import Manifest

VOICE_CLASSES: dict[str, tuple[str, ...]] = {
    "bass": ("Bass",),
    "keys": ("Piano", "Organ", "Chromatic Percussion"),
    "guitar": ("Guitar",),
    "strings": ("Strings", "Ensemble"),
    "winds": ("Reed", "Pipe", "Brass"),
    "drums": ("Drums",),
}
LEGATO_OVERLAP_S = 0.05  # notes overlapping by less than this still count as one line
MAX_POLYPHONIC_SHARE = 0.01  # share of sounding time with 2+ notes a monophonic stem may have
VOICED = 0.5
ACTIVE_DB = -60.0
MIN_ACTIVE_SHARE = 0.2  # a training window is at least this share voiced (or, for drums, loud)


@dataclass
class StemData:
    """One stem in memory: f0_hz and loudness_db per frame, audio at the training rate."""

    song_id: str
    stem: str
    instrument: str
    f0_hz: np.ndarray
    loudness_db: np.ndarray
    audio: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.f0_hz) / 250.0


def instrument_of(stem: dict) -> str | None:
    """The voice a manifest stem trains (VOICE_CLASSES), or None."""
    if stem.get("is_drum"):
        return "drums"
    for voice, classes in VOICE_CLASSES.items():
        if stem.get("inst_class") in classes:
            return voice
    return None


def polyphonic_share(notes: np.ndarray) -> float:
    """Share of the sounding time during which two or more notes overlap (by > LEGATO_OVERLAP_S)."""
    if len(notes) == 0:
        return 0.0
    onsets = notes["onset_s"].astype(np.float64)
    offsets = np.maximum(notes["offset_s"].astype(np.float64) - LEGATO_OVERLAP_S, onsets)
    events = np.concatenate([np.stack([onsets, np.ones_like(onsets)], 1), np.stack([offsets, -np.ones_like(offsets)], 1)])
    events = events[np.lexsort((events[:, 1], events[:, 0]))]
    count, sounding, poly = 0, 0.0, 0.0
    for (time_s, change), next_time in zip(events, np.append(events[1:, 0], events[-1, 0])):
        count += int(change)
        span = next_time - time_s
        sounding += span if count >= 1 else 0.0
        poly += span if count >= 2 else 0.0
    return poly / sounding if sounding > 0 else 0.0


def is_monophonic(cache_dir: Path, song_id: str, stem: dict) -> bool:
    """True when the stem has note labels and they are monophonic; drums count as one line."""
    if stem.get("is_drum"):
        return True
    path = song_folder(cache_dir, song_id) / f"{stem['name']}.notes.npy"
    if not stem.get("has_notes") or not path.is_file():
        return False
    return polyphonic_share(np.load(path)) <= MAX_POLYPHONIC_SHARE


def select_stems(
    cache_dir: Path, instruments: Iterable[str], split: str, sample_rate_hz: int
) -> list[tuple[str, dict]]:
    """(song_id, stem record) of every monophonic stem of `instruments` in `split`."""
    manifest = Manifest(cache_dir)
    if not manifest.records:
        raise TuttiError(f"no feature manifest under {cache_dir}: run prepare-data render (or features) first")
    wanted = set(instruments)
    chosen = []
    for song_id, record in sorted(manifest.records.items()):
        if record.get("status") != "ok" or record.get("split") != split:
            continue
        if record.get("feature_rate_hz") != sample_rate_hz:
            raise TuttiError(
                f"features of {song_id} are at {record.get('feature_rate_hz')} Hz, the decoder trains at "
                f"{sample_rate_hz} Hz: rebuild the cache with prepare-data --sample-rate {sample_rate_hz}"
            )
        for stem in record.get("stems", []):
            if stem.get("path") and instrument_of(stem) in wanted and is_monophonic(cache_dir, song_id, stem):
                chosen.append((song_id, stem))
    return chosen


def load_stem(cache_dir: Path, song_id: str, stem: dict, sample_rate_hz: int) -> StemData:
    """A stem's features and audio, trimmed to whole frames of both."""
    values = np.asarray(load_features(cache_dir, song_id, stem["name"]), dtype=np.float64)
    audio = read_mono(stem["path"], sample_rate_hz)
    hop = frame_samples(sample_rate_hz)
    n_frames = min(len(values), len(audio) // hop)
    f0 = np.where(values[:n_frames, VOICING] >= VOICED, values[:n_frames, F0], 0.0)
    return StemData(
        song_id, stem["name"], instrument_of(stem) or "", f0.astype(np.float32),
        values[:n_frames, LOUDNESS].astype(np.float32), audio[: n_frames * hop],
    )


def load_split(cache_dir: Path, instruments: Iterable[str], split: str, sample_rate_hz: int) -> list[StemData]:
    return [load_stem(cache_dir, s, stem, sample_rate_hz) for s, stem in select_stems(cache_dir, instruments, split, sample_rate_hz)]


def load_folder(folder: Path, instrument: str, sample_rate_hz: int) -> list[StemData]:
    """A user's own monophonic recordings (WAV/FLAC/OGG, one rate), analysed by the engine."""
    import soundfile as sf

    from engine.features.streaming import StreamingAnalyzer

    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg"))
    if not paths:
        raise TuttiError(f"{folder} holds no WAV, FLAC or OGG recordings: point --stems at a folder of them")
    rates = {p: sf.info(str(p)).samplerate for p in paths}
    if len(set(rates.values())) > 1:
        first, odd = paths[0], next(p for p in paths if rates[p] != rates[paths[0]])
        raise TuttiError(f"{odd.name} is at {rates[odd]} Hz, {first.name} at {rates[first]} Hz: export the recordings at one rate")
    analyzer = StreamingAnalyzer(sample_rate_hz)
    hop = frame_samples(sample_rate_hz)
    stems = []
    for path in paths:
        audio = read_mono(path, sample_rate_hz)
        values = analyzer.analyze(audio).values
        f0 = np.where(values[:, VOICING] >= VOICED, values[:, F0], 0.0)
        stems.append(StemData("user", path.name, instrument, f0.astype(np.float32),
                              values[:, LOUDNESS].astype(np.float32), audio[: len(values) * hop]))
    return stems


class WindowSampler:
    """Windows of `n_frames` drawn from stems, instruments equally often (indices into `names`)."""

    def __init__(self, stems: list[StemData], names: tuple[str, ...], n_frames: int, sample_rate_hz: int) -> None:
        self.names = names
        self.n_frames = n_frames
        self.hop = frame_samples(sample_rate_hz)
        self.starts: dict[str, list[tuple[StemData, np.ndarray]]] = {}
        for stem in stems:
            starts = self._good_starts(stem)
            if len(starts):
                self.starts.setdefault(stem.instrument, []).append((stem, starts))
        if not self.starts:
            raise TuttiError(
                "no training window has enough voiced (or, for drums, loud) frames: the stems are silent or "
                "unvoiced; give recordings of a monophonic pitched instrument"
            )
        self.instruments = sorted(self.starts)

    def _good_starts(self, stem: StemData) -> np.ndarray:
        if len(stem.f0_hz) < self.n_frames:
            return np.zeros(0, dtype=np.int64)
        active = (stem.loudness_db > ACTIVE_DB) if stem.instrument == "drums" else (stem.f0_hz > 0)
        share = np.convolve(active.astype(np.float64), np.ones(self.n_frames) / self.n_frames, mode="valid")
        return np.nonzero(share >= MIN_ACTIVE_SHARE)[0][:: max(1, self.n_frames // 8)]

    def batch(self, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        """f0_hz, loudness_db [size, n_frames], audio [size, n_frames * hop], instrument [size]."""
        rows = []
        for _ in range(size):
            instrument = self.instruments[rng.integers(len(self.instruments))]
            choices = self.starts[instrument]
            weights = np.array([len(s) for _, s in choices], dtype=np.float64)
            stem, starts = choices[rng.choice(len(choices), p=weights / weights.sum())]
            start = int(starts[rng.integers(len(starts))])
            rows.append((stem, start))
        return self._stack(rows)

    def _stack(self, rows: list[tuple[StemData, int]]) -> dict[str, np.ndarray]:
        n, hop = self.n_frames, self.hop
        return {
            "f0_hz": np.stack([s.f0_hz[k : k + n] for s, k in rows]),
            "loudness_db": np.stack([s.loudness_db[k : k + n] for s, k in rows]),
            "audio": np.stack([s.audio[k * hop : (k + n) * hop] for s, k in rows]),
            "instrument": np.array([self.names.index(s.instrument) for s, _ in rows], dtype=np.int64),
        }

    def fixed(self, count: int, seed: int) -> dict[str, np.ndarray]:
        """The same `count` windows every call (validation)."""
        return self.batch(np.random.default_rng([seed, 7919]), count)

    def hours(self) -> dict[str, float]:
        """Hours of audio per instrument in these stems."""
        totals: dict[str, float] = {}
        for instrument, choices in self.starts.items():
            totals[instrument] = sum(s.seconds for s, _ in choices) / 3600.0
        return totals
