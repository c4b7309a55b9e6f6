"""train-conductor and eval conductor end to end on a tiny rendered corpus, and their one-line errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import launch
from engine.config import load_config
from tests import fixtures_data as fx
from training.conductor.evaluate import evaluate
from training.data.cache import FeatureSettings
from training.data.prepare import RunOptions, prepare_features, prepare_render
from training.data.render import RenderSettings


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("conductor")
    plan = fx.tiny_plan(base / "scores")
    options = RunOptions(workers=1, min_free_gb=0.0)
    prepare_render(RenderSettings(base / "corpus"), options, plan, stream=io.StringIO())
    prepare_features("tutti", base / "corpus", FeatureSettings(base / "corpus" / "features"), options, stream=io.StringIO())
    return base / "corpus" / "features"


def _split_of_every_song(cache: Path) -> set[str]:
    return {json.loads(line)["split"] for line in (cache / "manifest.jsonl").read_text().splitlines()}


def test_train_both_export_and_evaluate(cache, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    model = tmp_path / "models" / "conductor.onnx"
    args = ["train-conductor", "--cache", str(cache), "--run-dir", str(run), "--steps", "3", "--threads", "1",
            "--workers", "1", "--export", str(model)]
    assert "train" in _split_of_every_song(cache)  # the fixture's song ids hash into the train split
    assert launch.main(args) == 0
    for kind in ("conductor", "baseline"):
        summary = json.loads((run / kind / "summary.json").read_text())
        assert summary["steps"] == 3 and (run / kind / "curves.png").is_file() and (run / kind / "best.pt").is_file()
    sidecar = json.loads(model.with_suffix(".json").read_text())
    assert sidecar["roles"] == ["bass", "counter", "harmony", "drums"] and sidecar["training"]["steps"] == 3
    assert launch.main(args) == 2  # resuming at 3 of 3 steps trains nothing; the model exists
    assert "add --force" in capsys.readouterr().err
    report = evaluate(model, cache, load_config([]), baseline_run=run / "baseline", split="train", max_seconds=8.0,
                      rolls_dir=tmp_path / "rolls")
    composed = [s for s in report["songs"] if not s["generated"]]
    assert composed and report["songs"][0]["seconds"] <= 8.0
    for name in ("leader_loudness_scaled", "role_mean_loudness", "noncausal_loudness_conductor"):
        assert report["baselines"][name]["loudness"]["all"]["frames"] > 0
    assert 0.0 <= report["baselines"]["octave_leader"]["bass_pitch_class_accuracy"] <= 1.0
    assert set(report["targets_met"]) >= {"loudness_20pct_below_simple_baselines", "onset_f1_above_baselines_and_0.6"}
    assert len(list((tmp_path / "rolls").glob("*.png"))) == len(report["songs"])


def test_bad_input_gets_one_line_errors(tmp_path, capsys) -> None:
    assert launch.main(["train-conductor", "--cache", str(tmp_path / "none")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert launch.main(["train-conductor", "--cache", str(tmp_path / "empty")]) == 2
    assert "no feature manifest" in capsys.readouterr().err
    assert launch.main(["eval", "conductor", "--model", str(tmp_path / "missing.onnx"), "--cache", str(tmp_path / "empty"),
                        "--out", str(tmp_path / "r.json")]) == 2
    assert "missing.onnx does not exist" in capsys.readouterr().err


def test_perform_with_role_voices_writes_the_followers_and_their_piano_roll(tmp_path, capsys) -> None:
    import numpy as np
    from PyQt6.QtGui import QImage

    from tests.conductor_fixtures import export_tiny_conductor

    model, _ = export_tiny_conductor(tmp_path)
    overlay = tmp_path / "roles.toml"
    overlay.write_text(f'[conductor]\nmodel = "{model}"\nmidi_out = false\n\n'
                       '[voices.bass]\nkind = "reference:plucked-bass"\nrole = "bass"\n\n'
                       '[voices.pad]\nkind = "reference:organ"\nrole = "harmony"\n')
    out = tmp_path / "take"
    assert launch.main(["perform", "demo/melody.flac", "--out", str(out), "--config", str(overlay)]) == 0
    assert "piano roll" in capsys.readouterr().out
    with np.load(out / "followers.npz") as saved:
        roles = list(saved["roles"])  # a file naming every voice's kind defines the ensemble
        assert saved["parts"].shape[1:] == (2, 4, 4) and roles == ["bass", "harmony"]
        assert np.isfinite(saved["parts"]).all() and saved["parts"][:, [0, 1], 3].sum() > 0  # the roles played notes
    image = QImage(str(out / "roll.png"))
    assert image.width() == 1400 and len({image.pixel(x, y) for x in range(0, 1400, 7) for y in range(0, 560, 7)}) > 5
    session = json.loads((out / "session.json").read_text())
    assert session["followers"] == "followers.npz" and session["voices"] == ["bass", "pad"]
    assert session["parts"] == {"bass": "conductor role bass; played by reference:plucked-bass",
                                "pad": "conductor role harmony; played by reference:organ"}
