"""Feature cache and manifest: contents, idempotence, version rebuild, bad input, low disk."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.errors import TuttiError
from engine.features.frames import FEATURE_VERSION
from engine.features.streaming import StreamingAnalyzer
from tests import fixtures_data as fx
from training.data.cache import FeatureSettings, load_features, song_folder
from training.data.manifest import Manifest
from training.data.prepare import RunOptions, prepare_features

ONE_WORKER = RunOptions(workers=1, min_free_gb=0.0)


def _prepare(root: Path, cache: Path, options: RunOptions = ONE_WORKER, dataset: str = "babyslakh"):
    return prepare_features(dataset, root, FeatureSettings(cache), options, stream=io.StringIO())


def test_cache_holds_engine_features_notes_and_a_manifest(tmp_path: Path) -> None:
    root, cache = fx.make_babyslakh(tmp_path / "baby"), tmp_path / "cache"
    report = _prepare(root, cache)
    assert (report.ran, report.reused, report.skipped) == (2, 0, [])
    features = load_features(cache, "babyslakh/Track00001", "S00")
    assert isinstance(features, np.memmap) and features.shape == (250, 16) and features.dtype == np.float32
    audio, _ = sf.read(str(root / "Track00001" / "stems" / "S00.wav"), dtype="float32")
    expected = StreamingAnalyzer(fx.RATE_HZ).analyze(audio).values.astype(np.float32)
    np.testing.assert_array_equal(features, expected)
    assert load_features(cache, "babyslakh/Track00001").shape == (250, 16)  # the mix
    notes = np.load(song_folder(cache, "babyslakh/Track00001") / "S02.notes.npy")
    assert list(notes["pitch"]) == [60, 64]
    record = Manifest(cache).records["babyslakh/Track00001"]
    assert record["status"] == "ok" and record["feature_version"] == FEATURE_VERSION
    assert record["duration_s"] == pytest.approx(1.0) and record["sample_rate_hz"] == 16000
    assert len(record["content_hash"]) == 64 and record["split"] == "train"
    assert [s["name"] for s in record["stems"]] == ["S00", "S01", "S02"]


def test_a_second_run_does_no_work_and_a_version_change_rebuilds(tmp_path: Path) -> None:
    root, cache = fx.make_babyslakh(tmp_path / "baby"), tmp_path / "cache"
    _prepare(root, cache)
    again = _prepare(root, cache)
    assert (again.ran, again.reused, again.workers) == (0, 2, 0)  # no executor was even started
    manifest = Manifest(cache)
    manifest.update("babyslakh/Track00002", feature_version=FEATURE_VERSION - 1)
    rebuilt = _prepare(root, cache)
    assert (rebuilt.ran, rebuilt.reused) == (1, 1)
    assert Manifest(cache).records["babyslakh/Track00002"]["feature_version"] == FEATURE_VERSION
    index = json.loads((song_folder(cache, "babyslakh/Track00002") / "features.json").read_text())
    index["feature_version"] = FEATURE_VERSION + 1
    (song_folder(cache, "babyslakh/Track00002") / "features.json").write_text(json.dumps(index))
    with pytest.raises(TuttiError, match="feature version"):
        load_features(cache, "babyslakh/Track00002")


def test_bad_inputs_are_skipped_with_a_reason_and_the_rest_goes_on(tmp_path: Path) -> None:
    root = fx.make_babyslakh(tmp_path / "baby", n_tracks=4)
    (root / "Track00001" / "stems" / "S01.wav").write_bytes(b"RIFF\x00\x00garbage")  # corrupt
    fx.write_audio(root / "Track00002" / "stems" / "S01.wav", fx.tone(82.0, rate_hz=22050), 22050)  # other rate
    fx.write_audio(root / "Track00003" / "stems" / "S01.wav", fx.tone(82.0, duration_s=0.5))  # other length
    report = _prepare(root, tmp_path / "cache")
    reasons = {s.song_id: s.reason for s in report.skipped}
    assert report.ran == 1 and len(reasons) == 3
    assert "not readable audio" in reasons["babyslakh/Track00001"]
    assert "22050 Hz" in reasons["babyslakh/Track00002"]
    assert "lasts 0.50 s" in reasons["babyslakh/Track00003"]
    records = Manifest(tmp_path / "cache").records
    assert all(records[s]["status"] == "skipped" and "\n" not in records[s]["reason"] for s in reasons)
    assert any("skipped babyslakh/Track00002" in line for line in report.lines())


def test_low_disk_stops_cleanly_and_a_rerun_resumes(tmp_path: Path) -> None:
    root, cache = fx.make_babyslakh(tmp_path / "baby"), tmp_path / "cache"
    stopped = _prepare(root, cache, RunOptions(workers=1, min_free_gb=1e9))
    assert stopped.ran == 0 and "below the --min-free-gb margin" in stopped.stop_reason
    resumed = _prepare(root, cache)
    assert (resumed.ran, resumed.stop_reason) == (2, None)


def test_essen_songs_get_note_labels_only(tmp_path: Path) -> None:
    from training.data.cache import extract_features
    from training.data.loaders import load_essen

    items, _ = load_essen(fx.make_essen(tmp_path / "essen"))
    record = extract_features((items[1], FeatureSettings(tmp_path / "cache")))
    assert record["status"] == "ok" and record["duration_s"] == pytest.approx(4.5)  # 9 beats at 120 qpm
    assert (song_folder(tmp_path / "cache", items[1].song_id) / "melody.notes.npy").is_file()
