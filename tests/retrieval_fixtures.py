"""A tiny multitrack corpus whose phrases recur across songs, in the rendered corpus's layout.

Six two-second motifs (four quarter notes at 120 qpm); motif i is always followed by motif
i + 1 (mod 6), so "what comes next" has one right answer, and songs start on different motifs,
some transposed. Each song has a melody stem (the leader) and a bass stem, MIDI labels, and a
feature cache built in-process (as `prepare-data features` would).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from tests.fixtures_data import write_audio, write_notes_midi

RATE_HZ = 16000
BEAT_S = 0.5
MOTIFS = [  # MIDI pitches of the four quarter notes of each motif
    (60, 64, 67, 72), (71, 67, 62, 59), (60, 62, 64, 65), (67, 65, 64, 62), (69, 72, 76, 74), (64, 60, 55, 57),
]
# (first motif, number of motifs, transposition in semitones) per song
SONGS = [(0, 8, 0), (2, 8, 0), (4, 8, 3), (1, 8, -2), (3, 8, 5), (5, 8, 0)]


def song_notes(first: int, n_motifs: int, transpose: int) -> tuple[list, list]:
    """(melody, bass) note rows (onset s, offset s, pitch, velocity) of one song."""
    melody, bass = [], []
    for k in range(n_motifs):
        motif = MOTIFS[(first + k) % len(MOTIFS)]
        start = 2.0 * k
        for j, pitch in enumerate(motif):
            melody.append((start + j * BEAT_S, start + (j + 0.9) * BEAT_S, pitch + transpose, 96 - 8 * (j % 2)))
        bass.append((start, start + 1.9, motif[0] - 24 + transpose, 80))
    return melody, bass


def render_notes(notes: list, duration_s: float, *, rate_hz: int = RATE_HZ, brightness: float = 0.6) -> np.ndarray:
    """A plain additive rendering of note rows: harmonics rolled off by `brightness`, short decay."""
    t = np.arange(int(duration_s * rate_hz)) / rate_hz
    out = np.zeros_like(t)
    for onset, offset, pitch, velocity in notes:
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        inside = (t >= onset) & (t < offset)
        local = t[inside] - onset
        envelope = np.minimum(local / 0.01, 1.0) * np.exp(-local * 1.5) * np.minimum((offset - t[inside]) / 0.02, 1.0)
        tone = sum(brightness ** (h - 1) * np.sin(2 * np.pi * h * f0 * local) for h in range(1, 6) if h * f0 < rate_hz / 2)
        out[inside] += 0.25 * (velocity / 127.0) * envelope * tone
    return out


def make_corpus(root: Path, songs=SONGS, first_track: int = 1) -> Path:
    """Write the songs as TrackNNNNN/ folders plus their feature cache under root/features."""
    from training.data.cache import FeatureSettings, extract_features
    from training.data.loaders import load_slakh
    from training.data.cache import song_folder
    from training.data.manifest import Manifest
    from training.data.prepare import FEATURES_COMMAND, claim_stage_dir

    for offset, (first, n_motifs, transpose) in enumerate(songs):
        track = root / f"Track{first_track + offset:05d}"
        melody, bass = song_notes(first, n_motifs, transpose)
        duration = 2.0 * n_motifs + 0.5
        stems = {"S00": (melody, 73, "melody"), "S01": (bass, 33, "bass")}
        mix = 0.0
        meta = {}
        for name, (notes, program, role) in stems.items():
            audio = render_notes(notes, duration)
            mix = mix + audio
            write_audio(track / "stems" / f"{name}.flac", audio)
            write_notes_midi(track / "MIDI" / f"{name}.mid", notes, program=program)
            meta[name] = {"audio_rendered": True, "midi_saved": True, "program_num": program, "is_drum": False,
                          "inst_class": "Pipe" if role == "melody" else "Bass", "role": role, "source": "composed"}
        write_audio(track / "mix.flac", mix / 2)
        song_id = f"fixture/song{first_track + offset}"
        (track / "metadata.yaml").write_text(yaml.safe_dump({
            "song_id": song_id, "split": "train", "tempo_qpm": 120.0, "stems": meta}))
    settings = FeatureSettings(root / "features")
    items, _ = load_slakh(root, "tutti")
    claim_stage_dir(settings.cache_dir, FEATURES_COMMAND, [
        song_folder(settings.cache_dir, item.song_id).relative_to(settings.cache_dir).as_posix() + "/" for item in items])
    manifest = Manifest(settings.cache_dir)
    for item in items:
        if manifest.ok(item.song_id) is None:
            record = extract_features((item, settings))
            record.pop("worker")
            record.pop("task_s")
            manifest.update(item.song_id, **record)
    return root
