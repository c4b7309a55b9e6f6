"""The folder test through the real CLI, for every command that writes a folder or a file.

A file Tutti did not write sits beside a previous output; the command, even with --force, must
leave it untouched, exit with code 2 and name it in one line. Tutti's own previous output is
replaced with --force (or continued, for the resumable prepare-data stages).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.safe_files import MARKER_NAME
from tests.fixtures_data import make_babyslakh

REPO = Path(__file__).resolve().parents[1]


def run_launch(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under `folder`."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def short_input(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input") / "tone.wav"
    t = np.arange(48000) / 48000
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000, subtype="FLOAT")
    return path


def test_perform(short_input, tmp_path) -> None:
    out = tmp_path / "take"
    first = run_launch("perform", short_input, "--out", out, "--blocksize", "1024")
    assert first.returncode == 0, first.stderr
    (out / "thesis.txt").write_text("four years of work")
    before = snapshot(out)
    for force in ((), ("--force",)):
        assert_refused(run_launch("perform", short_input, "--out", out, "--blocksize", "512", *force), str(out), "thesis.txt")
    assert snapshot(out) == before
    (out / "thesis.txt").unlink()
    assert_refused(run_launch("perform", short_input, "--out", out), "add --force")
    again = run_launch("perform", short_input, "--out", out, "--blocksize", "512", "--force")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "session.json").read_text())["block_samples"] == 512
    assert set(snapshot(out)) == set(before) - {"thesis.txt"}
    assert not [p for p in out.iterdir() if ".tutti-tmp" in p.name]


def test_perform_refuses_the_shipped_folders(tmp_path) -> None:
    assert_refused(run_launch("perform", REPO / "demo" / "melody.flac", "--out", REPO / "demo" / "out", "--force"), "demo/")
    assert not (REPO / "demo" / "out").exists()


def test_live_record(tmp_path) -> None:
    """`live --record` claims its folder before it looks for a device."""
    out = tmp_path / "take"
    out.mkdir()
    (out / "thesis.txt").write_text("mine")
    assert_refused(run_launch("live", "--record", out, "--force", "--duration", "1", timeout=120), "thesis.txt")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]


def test_analyze(short_input, tmp_path) -> None:
    out = tmp_path / "features.csv"
    beside = tmp_path / "thesis.txt"
    beside.write_text("mine")
    assert run_launch("analyze", short_input, "--out", out).returncode == 0
    assert_refused(run_launch("analyze", short_input, "--out", out), str(out), "--force")
    again = run_launch("analyze", short_input, "--out", out, "--force", "--blocksize", "64")
    assert again.returncode == 0, again.stderr
    assert "block_samples = 64" in out.with_suffix(".config.toml").read_text()
    theirs = tmp_path / "thesis.csv"
    theirs.write_text("chapter one\n")
    assert_refused(run_launch("analyze", short_input, "--out", theirs, "--force"), str(theirs), "not written by Tutti")
    assert theirs.read_text() == "chapter one\n" and beside.read_text() == "mine"
    assert not (tmp_path / "thesis.config.toml").exists()


def test_prepare_data_render(tmp_path) -> None:
    """A rendered corpus is continued by the same command; a foreign file stops it untouched."""
    out = tmp_path / "corpus"
    args = ("prepare-data", "render", "--out", out, "--max-hours", "0", "--no-features", "--workers", "1", "--min-free-gb", "0")
    assert run_launch(*args).returncode == 0
    (out / "Track00001").mkdir()
    (out / "Track00001" / "mix.flac").write_bytes(b"rendered before")  # inside a claimed track folder
    (out / "thesis.txt").write_text("mine")
    before = snapshot(out)
    assert_refused(run_launch(*args), str(out), "thesis.txt")
    assert snapshot(out) == before
    (out / "thesis.txt").unlink()
    resumed = run_launch(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "Track00001" / "mix.flac").read_bytes() == b"rendered before"


def test_prepare_data_features(tmp_path) -> None:
    root = make_babyslakh(tmp_path / "babyslakh", n_tracks=1)
    cache = tmp_path / "cache"
    args = ("prepare-data", "features", "--dataset", "babyslakh", "--root", root, "--out", cache,
            "--workers", "1", "--min-free-gb", "0")
    first = run_launch(*args)
    assert first.returncode == 0, first.stderr
    built = snapshot(cache)
    assert any(name.endswith("mix.npy") for name in built) and MARKER_NAME in built
    (cache / "notes.txt").write_text("mine")
    assert_refused(run_launch(*args), str(cache), "notes.txt")
    after = snapshot(cache)
    del after["notes.txt"]
    assert after == built
    (cache / "notes.txt").unlink()
    again = run_launch(*args)
    assert again.returncode == 0 and "1 already current" in again.stdout, again.stdout + again.stderr
