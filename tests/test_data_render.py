"""The corpus render on tiny scores: Slakh layout, metadata, generated parts, checks, resuming."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import yaml

from tests import fixtures_data as fx
from training.data import cli
from training.data.loaders import load_dataset
from training.data.manifest import Manifest
from training.data.prepare import RunOptions, corpus_hours, prepare_render
from training.data.render import RenderSettings

OPTIONS = RunOptions(workers=2, min_free_gb=0.0)
SLAKH_STEM_KEYS = {"program_num", "inst_class", "is_drum", "midi_program_name", "role", "source", "audio_rendered"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list]:
    """Three tiny scores rendered once for the module's tests (16 kHz)."""
    base = tmp_path_factory.mktemp("render")
    plan = fx.tiny_plan(base / "scores")
    report = prepare_render(RenderSettings(base / "corpus"), OPTIONS, plan, stream=io.StringIO())
    assert (report.ran, report.skipped) == (3, []), report.lines()
    return base / "corpus", plan


def test_tracks_follow_the_slakh_layout(corpus) -> None:
    out, _ = corpus
    track = out / "Track00001"
    metadata = yaml.safe_load((track / "metadata.yaml").read_text())
    names = sorted(metadata["stems"])
    assert names == ["S00", "S01"]  # the two-part kern
    lengths = set()
    for name in names:
        info = sf.info(str(track / "stems" / f"{name}.flac"))
        assert (info.samplerate, info.subtype, info.channels) == (16000, "PCM_16", 1)
        lengths.add(info.frames)
        assert SLAKH_STEM_KEYS <= set(metadata["stems"][name])
        assert mido.MidiFile(str(track / "MIDI" / f"{name}.mid")).length > 0
    mix, _ = sf.read(str(track / "mix.flac"))
    stems = sum(sf.read(str(track / "stems" / f"{n}.flac"))[0] for n in names)
    assert lengths == {len(mix)} and np.max(np.abs(mix - stems)) < 1e-3  # the mix is the stems' sum
    assert {metadata["stems"][n]["role"] for n in names} == {"melody", "bass"}
    assert len(mido.MidiFile(str(track / "all_src.mid")).tracks) == 3  # tempo + one per part


def test_melody_only_tunes_get_generated_accompaniment_with_drums_on_channel_10(corpus) -> None:
    out, _ = corpus
    metadata = yaml.safe_load((out / "Track00002" / "metadata.yaml").read_text())
    stems = metadata["stems"]
    assert [(s["role"], s["source"]) for s in stems.values()] == [
        ("melody", "composed"), ("bass", "generated"), ("harmony", "generated"), ("drums", "generated"),
    ]
    drums = next(name for name, s in stems.items() if s["is_drum"])
    assert stems[drums]["inst_class"] == "Drums"
    channels = {m.channel for m in mido.MidiFile(str(out / "Track00002" / "MIDI" / f"{drums}.mid")) if m.type == "note_on"}
    assert channels == {9}
    bass_notes = [m.note for m in mido.MidiFile(str(out / "Track00002" / "MIDI" / "S01.mid")) if m.type == "note_on" and m.velocity]
    assert bass_notes[0] % 12 == 7  # the waltz in G starts on its tonic
    assert metadata["split"] in ("train", "val", "test") and metadata["song_id"] == "fixture/abc#1"


def test_manifest_loader_and_hours_agree(corpus) -> None:
    out, _ = corpus
    manifest = Manifest(out)
    records = [manifest.records[k] for k in ("fixture/kern", "fixture/abc#1", "fixture/abc#2")]
    assert [r["generated"] for r in records] == [False, True, True]
    assert all(r["seed"] == 0 and len(r["content_hash"]) == 64 and r["sample_rate_hz"] == 16000 for r in records)
    hours = corpus_hours(manifest)
    assert hours["total"] == pytest.approx(sum(r["duration_s"] for r in records) / 3600)
    assert 0 < hours["composed"] < hours["total"]
    items, skipped = load_dataset("tutti", out)
    assert not skipped and [i.song_id for i in items] == ["fixture/kern", "fixture/abc#1", "fixture/abc#2"]
    assert [s.source for s in items[1].stems].count("generated") == 3


def test_a_second_render_does_no_work(corpus) -> None:
    out, plan = corpus
    report = prepare_render(RenderSettings(out), OPTIONS, plan, stream=io.StringIO())
    assert (report.ran, report.reused, report.workers) == (0, 3, 0)


def test_bad_scores_long_midi_and_a_missing_soundfont_are_skipped(tmp_path: Path) -> None:
    plan = fx.tiny_plan(tmp_path / "scores")
    broken = tmp_path / "scores" / "broken.krn"
    broken.write_text("**kern\n*M4/4\n=1\n4X\n*-\n**kern")
    from training.data.render import ScoreRef

    plan = [plan[0], ScoreRef("fixture/broken", broken, None, "chorale")]
    report = prepare_render(RenderSettings(tmp_path / "a", max_midi_s=2.0), RunOptions(workers=1, min_free_gb=0.0), plan, stream=io.StringIO())
    reasons = {s.song_id: s.reason for s in report.skipped}
    assert "MIDI length" in reasons["fixture/kern"] and "fixture/broken" in reasons
    assert not (tmp_path / "a" / "Track00001").exists() and not (tmp_path / "a" / "Track00001.partial").exists()
    report = prepare_render(RenderSettings(tmp_path / "b", soundfont=tmp_path / "none.sf2"), RunOptions(workers=1, min_free_gb=0.0), plan[:1], stream=io.StringIO())
    assert "soundfont" in report.skipped[0].reason and "fluid-soundfont-gm" in report.skipped[0].reason


def test_max_hours_and_low_disk_stop_the_render(tmp_path: Path) -> None:
    plan = fx.tiny_plan(tmp_path / "scores")
    one = RunOptions(workers=1, min_free_gb=0.0, max_hours=1e-4)  # 0.36 s: one track passes it
    report = prepare_render(RenderSettings(tmp_path / "c"), one, plan, stream=io.StringIO())
    assert report.ran in (1, 2) and report.stop_reason is None  # one more may be in flight
    report = prepare_render(RenderSettings(tmp_path / "c"), RunOptions(workers=1, min_free_gb=1e9), plan, stream=io.StringIO())
    assert report.ran == 0 and "rerun the same command" in report.stop_reason


def test_cli_dry_run_help_and_errors(tmp_path: Path, capsys) -> None:
    assert cli.main(["render", "--out", str(tmp_path / "corpus"), "--dry-run", "--max-hours", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "would render up to" in out and "chorale" in out and "0.05 h" in out
    assert not (tmp_path / "corpus" / "manifest.jsonl").exists()
    fx.make_lsx(tmp_path / "lsx")
    assert cli.main(["features", "--dataset", "lsx", "--root", str(tmp_path / "lsx"), "--dry-run"]) == 0
    assert "would build 3 of 3 songs" in capsys.readouterr().out
    assert cli.main(["features", "--dataset", "urmp", "--root", str(tmp_path / "lsx")]) == 2
    assert "no URMP pieces" in capsys.readouterr().err
    for step in ("render", "features"):
        with pytest.raises(SystemExit) as exit_code:
            cli.main([step, "--help"])
        assert exit_code.value.code == 0 and "--executor" in capsys.readouterr().out
