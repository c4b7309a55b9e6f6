"""The one way Tutti writes files: atomically, and only into folders it may write.

Atomic writes: every file goes to a hidden temporary name in its own folder
(`.NAME.XXXXXXXX.tutti-tmp.SUFFIX`, same suffix so writers that pick a format by name still
work), is flushed and fsynced, then renamed onto its final name. A kill, a full disk or an
exception leaves the old file or the new one, never half of one; the temporary is removed on
any exception (a SIGKILL can leave one, which a later claim of the folder removes).

Output folders (the `--force` rule): a folder Tutti writes holds a marker, `.tutti-output.json`,
naming the command and every file Tutti writes there. It is written, atomically, when the
folder is claimed, before any audio, so a take killed half-way is still recognised as Tutti's.

- a missing or empty folder is created (parents too) with its marker;
- a folder whose every file is named by its marker (or by the new claim) is Tutti's: without
  `force` it is refused ("add --force"), with `force` the files the new claim does not name
  are deleted and the others are left for their writer to replace atomically;
- a folder holding any file Tutti did not write (not named by the marker, or no marker at all)
  is refused even with `force`, naming up to three such files. Nothing is ever deleted then.

Names are paths relative to the folder with `/` separators. `features/x.npy` names one file
in a subfolder; a name ending in `/` (`Track00001/`) claims a whole subfolder, everything
below it being Tutti's (a corpus writes thousands of files per track). Subfolders are walked
without following symbolic links; a link is judged, and deleted, as the link itself.
Empty subfolders are ignored.

Shipped folders: no command writes into the repository's demo/, exported_models/ or index/
unless it is the command that builds them (`export`, `build-index`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from engine.errors import TuttiError

MARKER_NAME = ".tutti-output.json"
TEMP_TAG = ".tutti-tmp"
REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_FOLDERS = {"demo": (), "exported_models": ("export", "train-conductor"), "index": ("build-index",)}
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_LOW_SPACE_BYTES = 1 << 20  # a writer's own error (libsndfile, onnx) below this much free is a full disk


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()  # what open() would give; mkstemp makes 0600


def is_temporary(name: str) -> bool:
    """True for the base name of a temporary file left by an atomic write."""
    return name.startswith(".") and f"{TEMP_TAG}." in name


def _write_error(path: Path, err: BaseException) -> TuttiError:
    """The one-line error for a failed write of `path`."""
    if isinstance(err, OSError) and err.errno in _DISK_FULL:
        return TuttiError(f"disk full writing {path}: free some space, then run the command again")
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err) or type(err).__name__
    return TuttiError(f"cannot write {path} ({reason}): pick another output folder or make it writable")


def _disk_is_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _LOW_SPACE_BYTES
    except OSError:
        return False


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) to write by name; renamed onto `path` on exit.

    On a clean exit the temporary is fsynced and renamed onto `path` (the folder fsynced too);
    on an exception it is removed and the old `path`, if any, is left as it was. An OSError,
    or any writer error on a full disk, becomes a one-line TuttiError naming `path`.
    """
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{TEMP_TAG}{path.suffix}", dir=path.parent)
        os.close(fd)
        os.chmod(name, _FILE_MODE)
    except OSError as err:
        raise _write_error(path, err) from None
    temporary = Path(name)
    try:
        yield temporary
        _fsync_path(temporary)
        os.replace(temporary, path)
        _fsync_path(path.parent, directory=True)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        if isinstance(err, TuttiError) or not isinstance(err, Exception):
            raise
        if isinstance(err, OSError) or _disk_is_full(path.parent):
            raise _write_error(path, err) from None
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: the old file or the new one, never half of one."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_not_shipped(path: Path, command: str) -> None:
    """Refuse `path` inside the repository's shipped folders unless `command` builds that folder."""
    resolved = Path(os.path.abspath(Path(path).expanduser()))
    try:
        resolved = resolved.resolve()
    except OSError:
        pass
    for folder, builders in SHIPPED_FOLDERS.items():
        shipped = REPO_ROOT / folder
        if (resolved == shipped or shipped in resolved.parents) and command not in builders:
            only = f"only `{builders[0]}` writes there" if builders else "it ships with Tutti"
            raise TuttiError(f"{path} is inside Tutti's {folder}/ folder ({only}): pick another output path")


def _check_name(name: str) -> str:
    """A claimed name as stored: relative, '/'-separated, no '..'; a trailing '/' kept."""
    text = str(name)
    pure = PurePosixPath(text)
    if not text or pure.is_absolute() or "\\" in text or any(p in ("..", ".") for p in text.rstrip("/").split("/")) \
            or "" in text.rstrip("/").split("/") or pure.name == MARKER_NAME:
        raise TuttiError(f"{text!r} cannot be a file name inside an output folder: rename it")
    return text


def _is_named(relative: str, names: set[str]) -> bool:
    """True when file `relative` is named by `names`, itself or through a claimed subfolder."""
    if relative in names:
        return True
    parts = relative.split("/")
    return any("/".join(parts[:i]) + "/" in names for i in range(1, len(parts)))


def _folder_files(folder: Path) -> list[str]:
    """Every file (and link) under `folder` as a relative '/' path, the marker left out."""
    found = []
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder).as_posix()
        prefix = "" if base == "." else base + "/"
        for name in list(dirs):
            if os.path.islink(os.path.join(root, name)):
                found.append(prefix + name)
                dirs.remove(name)
        found += [prefix + name for name in files if prefix + name != MARKER_NAME]
    return sorted(found)


def read_marker(folder: Path) -> dict | None:
    """The folder's marker ({"command": str, "files": [names]}) or None when absent or damaged."""
    try:
        marker = json.loads((Path(folder) / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), list):
        return None
    names = []
    for name in marker["files"]:
        try:
            names.append(_check_name(name)) if isinstance(name, str) else None
        except TuttiError:
            continue  # a hostile or damaged entry names nothing
    command = marker.get("command")
    return {"command": command if isinstance(command, str) else "", "files": names}


def _write_marker(folder: Path, command: str, names: Iterable[str]) -> None:
    record = {"written_by": "tutti", "command": command, "files": sorted(set(names))}
    atomic_write_text(folder / MARKER_NAME, json.dumps(record, indent=1) + "\n")


def _foreign_error(folder: Path, foreign: list[str]) -> TuttiError:
    shown = ", ".join(foreign[:3]) + (f", and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return TuttiError(f"output folder {folder} holds files Tutti did not write ({shown}): pick another folder or move them")


def claim_output_dir(
    folder: Path, *, force: bool, command: str, names: Iterable[str], resume: bool = False
) -> None:
    """Make `folder` Tutti's output folder for `command`, writing `names` (the --force rule).

    Creates it (parents too) with its marker, or refuses in one TuttiError line; see the module
    docstring for the cases. `resume`: a folder this same command claimed before is reused as it
    is (nothing deleted), for commands that continue where a previous run stopped.
    """
    folder = Path(folder)
    new_names = {_check_name(name) for name in names}
    check_not_shipped(folder, command)
    if folder.exists() and not folder.is_dir():
        raise TuttiError(f"output {folder} exists and is not a folder: pick another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TuttiError(f"cannot create output folder {folder} ({err.strerror}): pick another --out") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TuttiError(f"output folder {folder} is not writable: pick another --out")
    marker = read_marker(folder)
    old_names = set(marker["files"]) if marker else set()
    files = _folder_files(folder)
    temporaries = [f for f in files if is_temporary(f.rsplit("/", 1)[-1])]
    present = [f for f in files if f not in temporaries]
    foreign = [f for f in present if marker is None or not _is_named(f, old_names | new_names)]
    if foreign:
        raise _foreign_error(folder, foreign)
    same_run = resume and marker is not None and marker["command"] == command
    if present and not same_run and not force:
        raise TuttiError(f"output folder {folder} exists: add --force to replace Tutti's files in it")
    _write_marker(folder, marker["command"] if same_run else command, old_names | new_names)
    stale = temporaries + ([] if same_run else [f for f in present if not _is_named(f, new_names)])
    for name in stale:
        _remove_file(folder, name)
    if stale and not same_run:
        kept = {f for f in old_names if os.path.lexists(folder / f.rstrip("/"))}
        _write_marker(folder, command, new_names | kept)


def _remove_file(folder: Path, name: str) -> None:
    """Delete one file of the folder and the subfolders it leaves empty (up to `folder`)."""
    path = folder / name
    path.unlink(missing_ok=True)
    for parent in path.parents:
        if parent == folder:
            break
        try:
            parent.rmdir()
        except OSError:
            break  # not empty


def register_output(folder: Path, names: Iterable[str]) -> None:
    """Add `names` to the marker of a folder claimed before (files learnt late: voices, checkpoints)."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        raise TuttiError(f"output folder {folder} has no {MARKER_NAME}: it must be claimed before it is written")
    added = {_check_name(name) for name in names}
    if not added <= set(marker["files"]):
        _write_marker(folder, marker["command"], set(marker["files"]) | added)


def release_output_dir(folder: Path) -> None:
    """Undo a claim that wrote nothing: remove the marker and the folder if nothing else is there."""
    folder = Path(folder)
    if folder.is_dir() and not _folder_files(folder):
        (folder / MARKER_NAME).unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:
            pass


def claim_output_file(path: Path, *, force: bool, command: str, signature: bytes) -> None:
    """The --force rule for a single output file in a folder that is not Tutti's.

    A missing `path` is fine (its folder is created); an existing one needs `force` and must
    start with `signature` (the first bytes every file of this kind Tutti writes starts with):
    a file that does not was not written by Tutti and is never replaced.
    """
    path = Path(path)
    check_not_shipped(path, command)
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise TuttiError(f"output {path} exists and is not a file: pick another --out")
        if not force:
            raise TuttiError(f"output {path} exists: add --force to replace it")
        try:
            with open(path, "rb") as handle:
                head = handle.read(len(signature))
        except OSError as err:
            raise TuttiError(f"cannot read {path} ({err.strerror}): pick another --out") from None
        if head != signature:
            raise TuttiError(f"{path} was not written by Tutti: pick another --out or move it")
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TuttiError(f"cannot create output folder {path.parent} ({err.strerror}): pick another --out") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise TuttiError(f"output folder {path.parent} is not writable: pick another --out")
