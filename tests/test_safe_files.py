"""engine.safe_files: atomic writes and the --force rule, on real files and a real file-size limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import TuttiError
from engine.safe_files import (
    MARKER_NAME, REPO_ROOT, atomic_path, atomic_write_bytes, atomic_write_text, check_not_shipped,
    claim_output_dir, claim_output_file, read_marker, register_output, release_output_dir,
)


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "session.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert _listing(tmp_path) == ["session.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it, not mkstemp's 0600


def test_exception_keeps_the_old_file(tmp_path) -> None:
    target = tmp_path / "table.csv"
    atomic_write_text(target, "old,values\n")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as temporary:
            assert temporary.parent == tmp_path and temporary.suffix == ".csv" and temporary != target
            np.savetxt(temporary, np.ones((3, 2)), delimiter=",")
            1 / 0
    assert target.read_text() == "old,values\n"
    assert _listing(tmp_path) == ["table.csv"]


def test_a_full_file_system_raises_one_line_naming_the_file(tmp_path) -> None:
    """A real write limit (RLIMIT_FSIZE, EFBIG like ENOSPC): TuttiError, old file whole, no temporary."""
    target = tmp_path / "model.onnx"
    target.write_bytes(b"x" * 1000)
    script = f"""
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from engine.errors import TuttiError
from engine.safe_files import atomic_write_bytes
try:
    atomic_write_bytes(Path({str(target)!r}), b"y" * 100000)
except TuttiError as err:
    print(err)
    sys.exit(2)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "disk full" in result.stdout and str(target) in result.stdout and len(result.stdout.splitlines()) == 1
    assert target.read_bytes() == b"x" * 1000
    assert _listing(tmp_path) == ["model.onnx"]


NAMES = ["input.wav", "mix.wav", "bass.wav", "session.json"]


def _take(folder: Path, names=NAMES) -> None:
    claim_output_dir(folder, force=False, command="perform", names=names)
    for name in names:
        atomic_write_bytes(folder / name, name.encode())


def test_missing_folder_is_created_with_its_marker(tmp_path) -> None:
    folder = tmp_path / "a" / "b" / "take"
    claim_output_dir(folder, force=False, command="perform", names=NAMES)
    assert read_marker(folder) == {"command": "perform", "files": sorted(NAMES)}
    assert _listing(folder) == [MARKER_NAME]


def test_own_output_needs_force_then_only_stale_files_go(tmp_path) -> None:
    folder = tmp_path / "take"
    _take(folder)
    with pytest.raises(TuttiError, match="exists: add --force"):
        claim_output_dir(folder, force=False, command="perform", names=NAMES)
    new_names = ["input.wav", "mix.wav", "piano.wav", "session.json"]
    claim_output_dir(folder, force=True, command="perform", names=new_names)
    assert not (folder / "bass.wav").exists()  # named before, not now: deleted
    assert (folder / "mix.wav").read_bytes() == b"mix.wav"  # left for its writer to replace atomically
    assert read_marker(folder)["files"] == sorted(new_names)


def test_foreign_files_are_refused_even_with_force_and_survive(tmp_path) -> None:
    folder = tmp_path / "take"
    _take(folder)
    for name in ("thesis.txt", "b.txt", "c.txt", "d.txt"):
        (folder / name).write_text("precious")
    with pytest.raises(TuttiError) as caught:
        claim_output_dir(folder, force=True, command="perform", names=NAMES)
    message = str(caught.value)
    assert "Tutti did not write (b.txt, c.txt, d.txt, and 1 more)" in message and str(folder) in message
    assert "\n" not in message
    assert (folder / "thesis.txt").read_text() == "precious" and (folder / "bass.wav").exists()


def test_a_folder_without_marker_is_never_replaced(tmp_path) -> None:
    folder = tmp_path / "music"
    folder.mkdir()
    (folder / "song.flac").write_bytes(b"audio")
    with pytest.raises(TuttiError, match=r"did not write \(song.flac\)"):
        claim_output_dir(folder, force=True, command="perform", names=["song.flac"])
    assert (folder / "song.flac").read_bytes() == b"audio" and not (folder / MARKER_NAME).exists()


def test_subfolders_by_file_or_whole_and_links_are_not_followed(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    folder = tmp_path / "corpus"
    names = ["Track00001/", "features/x.npy"]
    claim_output_dir(folder, force=False, command="prepare-data render", names=names)
    (folder / "Track00001" / "stems").mkdir(parents=True)
    (folder / "Track00001" / "stems" / "S00.flac").write_bytes(b"a")
    (folder / "features").mkdir()
    (folder / "features" / "x.npy").write_bytes(b"b")
    claim_output_dir(folder, force=False, command="prepare-data render", names=names, resume=True)  # continue
    assert (folder / "Track00001" / "stems" / "S00.flac").exists()
    (folder / "features" / "y.npy").write_bytes(b"c")  # not named: foreign
    with pytest.raises(TuttiError, match="features/y.npy"):
        claim_output_dir(folder, force=True, command="prepare-data render", names=names)
    (folder / "features" / "y.npy").unlink()
    (folder / "Track00001" / "link").symlink_to(outside)
    claim_output_dir(folder, force=True, command="perform", names=["mix.wav"])  # the whole subtree goes
    assert _listing(folder) == [MARKER_NAME] and (outside / "keep.txt").read_text() == "mine"


def test_a_hostile_marker_cannot_delete_outside_the_folder(tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    folder = tmp_path / "take"
    folder.mkdir()
    (folder / MARKER_NAME).write_text(json.dumps({"command": "perform", "files": ["../victim.txt", "/etc/passwd", 3]}))
    (folder / "mix.wav").write_bytes(b"x")
    with pytest.raises(TuttiError, match="mix.wav"):
        claim_output_dir(folder, force=True, command="perform", names=["input.wav"])
    assert victim.read_text() == "mine"
    with pytest.raises(TuttiError, match="cannot be a file name"):
        claim_output_dir(folder, force=True, command="perform", names=["../victim.txt"])


def test_damaged_marker_and_stale_temporaries(tmp_path) -> None:
    folder = tmp_path / "take"
    folder.mkdir()
    (folder / MARKER_NAME).write_bytes(b"\xff{not json")
    (folder / ".mix.wav.abc123.tutti-tmp.wav").write_bytes(b"half")  # left by a SIGKILL
    claim_output_dir(folder, force=False, command="perform", names=NAMES)
    assert _listing(folder) == [MARKER_NAME] and read_marker(folder)["command"] == "perform"


def test_register_output_and_release(tmp_path) -> None:
    folder = tmp_path / "take"
    claim_output_dir(folder, force=False, command="live --record", names=["input.wav"])
    register_output(folder, ["flute.wav"])
    assert read_marker(folder)["files"] == ["flute.wav", "input.wav"]
    release_output_dir(folder)
    assert not folder.exists()
    with pytest.raises(TuttiError, match="claimed"):
        register_output(tmp_path, ["x.wav"])


def test_shipped_folders_only_take_their_builder(tmp_path) -> None:
    with pytest.raises(TuttiError, match="demo/"):
        check_not_shipped(REPO_ROOT / "demo" / "out", "perform")
    with pytest.raises(TuttiError, match="only `export`"):
        claim_output_dir(REPO_ROOT / "exported_models" / "x", force=True, command="perform", names=["a"])
    check_not_shipped(REPO_ROOT / "exported_models" / "flute.onnx", "export")
    check_not_shipped(REPO_ROOT / "index", "build-index")
    with pytest.raises(TuttiError, match="index/"):
        claim_output_file(REPO_ROOT / "index" / "f.csv", force=True, command="analyze", signature=b"t")
    assert not (REPO_ROOT / "exported_models" / "x").exists()


def test_single_output_file_rule(tmp_path) -> None:
    mine, theirs = tmp_path / "f.csv", tmp_path / "thesis.csv"
    mine.write_text("time_s,f0\n1,2\n")
    theirs.write_text("chapter one\n")
    claim_output_file(tmp_path / "new" / "g.csv", force=False, command="analyze", signature=b"time_s")
    assert (tmp_path / "new").is_dir()
    with pytest.raises(TuttiError, match="add --force"):
        claim_output_file(mine, force=False, command="analyze", signature=b"time_s")
    claim_output_file(mine, force=True, command="analyze", signature=b"time_s")
    with pytest.raises(TuttiError, match="was not written by Tutti"):
        claim_output_file(theirs, force=True, command="analyze", signature=b"time_s")
