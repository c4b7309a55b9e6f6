"""`extend`: Top-K continuations of a clip rendered through the block processor; its joins and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio_io import read_mono
from engine.config import load_config
from engine.errors import TuttiError
from engine.features.streaming import StreamingAnalyzer
from engine.retrieval.build import BuildOptions, build_index
from engine.retrieval.extend import equal_power_gains, extend_clip
from engine.retrieval.plan import join_offset_s, plan_path
from engine.retrieval.query import QuerySettings, retrieve
from engine.retrieval.store import ChunkIndex
from tests.retrieval_fixtures import MOTIFS, make_corpus, render_notes, song_notes

import launch


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("extend")
    out = root / "index"
    build_index(BuildOptions(root=make_corpus(root / "corpus"), out=out))
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Motifs 2 and 3 a semitone up, in another timbre, at 44.1 kHz (resampled on the way in)."""
    melody, _ = song_notes(2, 2, 1)
    path = tmp_path_factory.mktemp("clip") / "clip.wav"
    sf.write(path, render_notes(melody, 4.0, rate_hz=44100, brightness=0.3), 44100, subtype="FLOAT")
    return path


def _level_db(audio: np.ndarray, rate: int) -> np.ndarray:
    frames = StreamingAnalyzer(rate).analyze(np.ascontiguousarray(audio, dtype=np.float32)).values
    return frames[:, 2]


def test_extend_writes_each_path_gain_matched_and_beat_aligned(index_dir: Path, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = launch.main(["extend", str(clip), "--out", str(out), "--index", str(index_dir), "--top-k", "2", "--seconds", "4"])
    assert code == 0
    record = json.loads((out / "candidates.json").read_text())
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "candidates.json", "config.toml", "extended_1.wav", "extended_2.wav"]
    assert record["tempo_used"] and abs(record["tempo_bpm"] - 120) < 2
    for candidate in record["candidates"]:
        audio, rate = sf.read(out / candidate["file"])
        assert rate == 48000 and audio.shape[1] == 2
        assert audio.shape[0] / rate == pytest.approx(candidate["join_s"] + 4.0 + 0.5, abs=0.01)
        # beat aligned: the clip's beats fall every 0.5 s from 0, its end is on a beat, the song's too
        assert candidate["join_s"] == pytest.approx(4.0, abs=0.02)
        assert [s["transpose"] for s in candidate["steps"]] == [candidate["steps"][0]["transpose"]] * 2
        loudness = _level_db(audio.mean(axis=1), rate)
        join = int(candidate["join_s"] * 250)
        before, after = loudness[join - 250:join].mean(), loudness[join + 25:join + 275].mean()
        assert abs(after - before) < 4.0, (before, after)  # gain matched across the join
        assert np.max(np.abs(audio)) < 1.0


def test_the_planned_leader_plays_what_follows_in_the_players_key(index_dir: Path, clip: Path) -> None:
    index = ChunkIndex.open(index_dir)
    frames = StreamingAnalyzer(48000).analyze(read_mono(clip, 48000)).values
    path = retrieve(index, frames, QuerySettings(top_k=1, steps=2))[0]
    plan = plan_path(index, path, player_tempo_bpm=120.0)
    lead = plan.leader.notes
    starts = lead[lead[:, 0] >= -1e-6]  # notes from the join on (the pre-roll holds the one before)
    played = starts[np.argsort(starts[:, 0])][:8, 2].astype(int).tolist()
    assert played == [p + 1 for p in MOTIFS[4]] + [p + 1 for p in MOTIFS[5]]
    np.testing.assert_allclose(starts[:8, 0], np.arange(8) * 0.5, atol=1e-6)
    assert plan.stretch == 1.0 and plan.first_beat_s == 0.0
    assert {s.role for s in plan.stems} == {"melody", "bass"}


def test_equal_power_crossfade_and_beat_offset() -> None:
    fade_out, fade_in = equal_power_gains(1000, 600, 200)
    np.testing.assert_allclose(fade_out**2 + fade_in**2, 1.0, atol=1e-6)
    assert fade_out[399] == 1.0 and fade_in[399] == 0.0 and fade_in[600] == pytest.approx(1.0)
    # beats every 0.5 s through 1.25 s; a clip ending at 4.1 s; the song's first beat 0.2 s in
    delay = join_offset_s(4.1, 1.25, 120.0, 0.2)
    assert 0 <= delay < 0.5
    assert ((4.1 + delay + 0.2 - 1.25) / 0.5) % 1 == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("make, message", [
    (lambda rate: np.zeros(int(1.5 * rate)), "shorter than one 2 s chunk"),
    (lambda rate: np.zeros(3 * rate), "no pitched sound"),
])
def test_extend_refuses_a_short_or_silent_clip_and_writes_nothing(index_dir: Path, tmp_path: Path, make, message) -> None:
    path = tmp_path / "bad.wav"
    sf.write(path, make(48000), 48000)
    with pytest.raises(TuttiError, match=message):
        extend_clip(path, tmp_path / "out", load_config(), index_dir=index_dir)
    assert not (tmp_path / "out").exists()


def test_extend_refuses_a_missing_or_empty_index_and_a_foreign_folder(index_dir: Path, clip: Path, tmp_path: Path) -> None:
    with pytest.raises(TuttiError, match="no chunk index"):
        extend_clip(clip, tmp_path / "out", load_config(), index_dir=tmp_path / "nowhere")
    ChunkIndex.create(tmp_path / "empty")
    with pytest.raises(TuttiError, match="empty"):
        extend_clip(clip, tmp_path / "out", load_config(), index_dir=tmp_path / "empty")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("not Tutti's")
    with pytest.raises(TuttiError, match="did not write"):
        extend_clip(clip, foreign, load_config(), index_dir=index_dir, top_k=1, seconds=2)
    assert sorted(p.name for p in foreign.iterdir()) == ["mine.txt"]


def test_build_index_cli_adds_and_refuses(index_dir: Path, tmp_path: Path, capsys) -> None:
    corpus = Path(ChunkIndex.open(index_dir).folder).parent / "corpus"
    out = tmp_path / "idx"
    assert launch.main(["build-index", "--root", str(corpus), "--out", str(out)]) == 0
    assert "6 songs added" in capsys.readouterr().out
    assert launch.main(["build-index", "--root", str(corpus), "--out", str(out)]) == 2  # exists: needs --force or --add
    assert "--force" in capsys.readouterr().err
    assert launch.main(["build-index", "--root", str(corpus), "--out", str(out), "--add"]) == 0
    printed = capsys.readouterr().out
    assert "0 songs added" in printed and "6 already indexed" in printed


def test_live_task_proposes_future_frames_of_every_stem(index_dir: Path) -> None:
    from engine.retrieval.live import RetrievalTask

    task = RetrievalTask(ChunkIndex.open(index_dir), top_k=3, horizon_s=4.0)
    melody, _ = song_notes(1, 3, 0)  # motifs 1, 2, 3: motif 4 follows
    frames = StreamingAnalyzer(48000).analyze(render_notes(melody, 6.0, rate_hz=48000, brightness=0.3).astype(np.float32)).values
    proposals = task.compute(frames[-task.history_frames:])
    assert len(proposals) == 3 and [p.rank for p in proposals] == [1, 2, 3]
    for proposal in proposals:
        lead = next(part for part in proposal.parts if part.is_leader)
        assert lead.frames.shape == (1000, 16) and {part.role for part in proposal.parts} == {"melody", "bass"}
        # the first future note is motif 4's first note at its transposition, on the next beat
        voiced = np.flatnonzero(lead.frames[:, 1] > 0.5)
        assert voiced[0] <= 2
        pitch = 69 + 12 * np.log2(lead.frames[voiced[0], 0] / 440.0)
        assert round(pitch) == MOTIFS[4][0]
    assert task.compute(np.zeros((1500, 16))) == []  # silence: no proposals, no error


def test_honest_evaluation_beats_the_exhaustive_baseline_on_the_motif_corpus(index_dir: Path, tmp_path: Path) -> None:
    import os

    from engine.retrieval.evaluate import EVAL_SOUNDFONT, REPORT_SIGNATURE, main

    if not EVAL_SOUNDFONT.is_file():
        message = "apt-get install musescore-general-soundfont-small (setup.sh does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    corpus = index_dir.parent / "corpus"
    out = tmp_path / "report.json"
    assert main(["--out", str(out), "--index", str(index_dir), "--corpus", str(corpus), "--splits", "train", "--every", "2",
                 "--max-queries", "9", "--seam-joins", "4"]) == 0
    assert out.read_bytes().startswith(REPORT_SIGNATURE)
    report = json.loads(out.read_text())
    tutti, baseline = report["methods"]["tutti"], report["methods"]["baseline"]
    assert report["queries"] == 9  # 3 songs, 3 each (16.5 s songs: query ends at 9, 11, 13 s)
    # every motif is followed by the same motif in other songs: what follows is findable
    assert tutti["recall@1"] >= 0.8 and tutti["recall@5"] >= 0.9
    assert tutti["recall@5"] > baseline["recall@5"] + 0.3
    assert tutti["exact_recall@10"] == 0.0  # the only match before the target overlaps the window
    assert report["seams"]["natural"]["joins"] == 4


def test_extend_plays_the_users_own_recording_when_the_index_references_it(tmp_path: Path) -> None:
    """An index of plain audio files: an untransposed continuation is the recording itself."""
    from engine.retrieval.extend import source_audio

    folder = tmp_path / "takes"
    folder.mkdir()
    for number, first in enumerate((0, 3)):
        melody, _ = song_notes(first, 6, 0)
        sf.write(folder / f"take{number}.wav", render_notes(melody, 12.0, rate_hz=48000), 48000, subtype="FLOAT")
    build_index(BuildOptions(root=folder, out=tmp_path / "index"))
    melody, _ = song_notes(0, 2, 0)  # motifs 0, 1 as played in take0 itself: what follows is take0 at 4 s
    clip = tmp_path / "clip.wav"
    sf.write(clip, render_notes(melody, 4.0, rate_hz=48000, brightness=0.3), 48000, subtype="FLOAT")
    out = tmp_path / "out"
    record = extend_clip(clip, out, load_config(), index_dir=tmp_path / "index", top_k=1, seconds=4)
    candidate = record["candidates"][0]
    assert candidate["steps"][0]["transpose"] == 0 and candidate["steps"][0]["source_path"]
    assert candidate["lead"] == "source audio"
    index = ChunkIndex.open(tmp_path / "index")
    path = retrieve(index, StreamingAnalyzer(48000).analyze(read_mono(clip, 48000)).values, QuerySettings(top_k=1, steps=2))[0]
    source = source_audio(index, path, plan_path(index, path, 120.0), 48000)
    take = read_mono(Path(index.songs[path.first.song].source_path), 48000)
    start = int(round((path.first.start_s - 0.1) * 48000))
    np.testing.assert_array_equal(source, take[start:start + len(source)])
    assert len(source) == int(round(4.1 * 48000))
