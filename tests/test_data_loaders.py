"""Loaders on tiny fixtures in each published layout; wrong folders; labels; the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import TuttiError
from tests import fixtures_data as fx
from training.data.items import split_for
from training.data.labels import f0_from_urmp, stem_notes
from training.data.loaders import LOADERS, load_dataset

MAKERS = {
    "babyslakh": fx.make_babyslakh, "slakh": fx.make_slakh2100, "lsx": fx.make_lsx,
    "urmp": fx.make_urmp, "essen": fx.make_essen,
}
LAYOUT_WORDS = {  # what each loader's error must name
    "babyslakh": "TrackNNNNN/metadata.yaml", "slakh": "train|validation|test", "lsx": "tr/, cv/ and tt/",
    "urmp": "AuSep_<n>_<inst>", "essen": "*.krn",
}


def test_babyslakh_reads_stems_classes_roles_and_notes(tmp_path: Path) -> None:
    items, skipped = load_dataset("babyslakh", fx.make_babyslakh(tmp_path))
    assert not skipped and [i.song_id for i in items] == ["babyslakh/Track00001", "babyslakh/Track00002"]
    item = items[0]
    assert [(s.name, s.inst_class, s.is_drum, s.role) for s in item.stems] == [
        ("S00", "Piano", False, "harmony"), ("S01", "Bass", False, "bass"), ("S02", "Drums", True, "drums"),
    ]  # S03 is listed with audio_rendered: false and has no file
    assert item.mix_path.name == "mix.wav" and item.stems[1].program_num == 33
    notes = stem_notes(item, item.stems[0])
    np.testing.assert_allclose(notes["onset_s"], [0.0, 0.5], atol=1e-3)
    np.testing.assert_allclose(notes["offset_s"], [0.4, 0.9], atol=1e-3)
    assert list(notes["pitch"]) == [60, 64] and list(notes["velocity"]) == [90, 70]


def test_slakh2100_takes_splits_from_folders_and_leaves_omitted_out(tmp_path: Path) -> None:
    items, _ = load_dataset("slakh", fx.make_slakh2100(tmp_path))
    assert [(i.song_id, i.split) for i in items] == [
        ("slakh/Track00001", "train"), ("slakh/Track00002", "val"), ("slakh/Track00003", "test"),
    ]
    assert all(s.audio_path.suffix == ".flac" for i in items for s in i.stems)


def test_lsx_reads_split_folders_and_missing_stems(tmp_path: Path) -> None:
    items, _ = load_dataset("lsx", fx.make_lsx(tmp_path))
    assert [(i.song_id, i.split) for i in items] == [
        ("lsx/tr/Track00001", "train"), ("lsx/cv/Track00002", "val"), ("lsx/tt/Track00003", "test"),
    ]
    assert [s.name for s in items[2].stems] == ["bass", "drums", "piano"]
    assert {s.name: s.role for s in items[0].stems} == {"bass": "bass", "drums": "drums", "guitar": "harmony", "piano": "harmony"}


def test_urmp_keeps_every_stem_name_unique_with_labels(tmp_path: Path) -> None:
    items, _ = load_dataset("urmp", fx.make_urmp(tmp_path))
    sonata = next(i for i in items if "Sonata" in i.song_id)
    assert [s.name for s in sonata.stems] == ["1_vn", "2_vn"]  # two violins, two names
    assert [s.inst_class for s in sonata.stems] == ["Strings", "Strings"]
    jupiter = next(i for i in items if "Jupiter" in i.song_id)
    assert [s.role for s in jupiter.stems] == ["melody", "bass"] and jupiter.mix_path.name.startswith("AuMix_")
    notes = stem_notes(jupiter, jupiter.stems[0])
    assert list(notes["pitch"]) == [69] and notes["offset_s"][0] == pytest.approx(0.9)
    times, f0 = f0_from_urmp(jupiter.stems[1].f0_path)
    assert len(times) == 200 and np.allclose(f0, 220.0)


def test_essen_reads_kern_files_and_every_abc_tune(tmp_path: Path) -> None:
    items, _ = load_dataset("essen", fx.make_essen(tmp_path))
    assert [i.song_id for i in items] == ["essen/europa/deutschl/kinder/deut0001", "essen/abc/tiny#1", "essen/abc/tiny#2"]
    kern_notes = stem_notes(items[0], items[0].stems[0])
    assert list(kern_notes["pitch"]) == [60, 64, 67, 72, 60]  # the top spine, c e g cc c
    assert list(stem_notes(items[2], items[2].stems[0])["pitch"]) == [74, 78, 81, 78, 74]
    assert all(s.audio_path is None for i in items for s in i.stems)


@pytest.mark.parametrize("name", sorted(LAYOUT_WORDS))
def test_a_wrong_folder_names_the_expected_layout(tmp_path: Path, name: str) -> None:
    (tmp_path / "something.txt").write_text("not a dataset")
    with pytest.raises(TuttiError) as error:
        load_dataset(name, tmp_path)
    assert LAYOUT_WORDS[name] in str(error.value)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_each_fixture_is_only_its_own_layout(tmp_path: Path, name: str) -> None:
    """A loader must not accept another dataset's folder (negative of the tests above)."""
    MAKERS[name](tmp_path)
    for other in ("lsx", "urmp"):
        if other != name:
            with pytest.raises(TuttiError):
                load_dataset(other, tmp_path)


def test_a_broken_metadata_file_skips_only_that_track(tmp_path: Path) -> None:
    fx.make_babyslakh(tmp_path)
    (tmp_path / "Track00002" / "metadata.yaml").write_text("stems: [unclosed")
    items, skipped = load_dataset("babyslakh", tmp_path)
    assert [i.song_id for i in items] == ["babyslakh/Track00001"]
    assert skipped[0].song_id == "babyslakh/Track00002" and "metadata.yaml" in skipped[0].reason


def test_unknown_dataset_and_missing_folder_are_errors(tmp_path: Path) -> None:
    with pytest.raises(TuttiError, match="choose one of"):
        load_dataset("musdb", tmp_path)
    with pytest.raises(TuttiError, match="does not exist"):
        load_dataset("lsx", tmp_path / "nowhere")
    assert "tutti" in LOADERS


def test_split_is_a_stable_function_of_the_song_id() -> None:
    ids = [f"song{i}" for i in range(2000)]
    splits = [split_for(song) for song in ids]
    assert splits == [split_for(song) for song in ids]
    shares = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
    assert shares["train"] == pytest.approx(0.8, abs=0.03) and shares["val"] == pytest.approx(0.1, abs=0.02)


def test_training_data_stays_torch_free() -> None:
    """DESIGN.md section 2: build-index uses training/data without torch."""
    import subprocess
    import sys

    code = (
        "import sys, pkgutil, importlib, training.data as d\n"
        "for m in pkgutil.walk_packages(d.__path__, 'training.data.'): importlib.import_module(m.name)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:]


def test_the_cli_parser_needs_no_training_requirements() -> None:
    """launch.py registers prepare-data for every command: the app's install must import it."""
    import subprocess
    import sys

    code = (
        "import sys, argparse, training.data.cli as c\n"
        "c.add_prepare_data_parser(argparse.ArgumentParser().add_subparsers())\n"
        "print(sorted(m for m in ('mido', 'yaml', 'music21', 'soundfile', 'distributed') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:]
