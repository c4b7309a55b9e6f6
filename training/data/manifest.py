"""The manifest: one JSON record per song, appended as a journal so a killed run loses nothing.

`manifest.jsonl` holds one line per update; the last line of a song id wins. Each record keeps
the song's dataset, origin, status ("ok" or "skipped" with a one-line `reason`), content hash,
duration, sample rate, stems, split and seed (DESIGN.md section 8). `compact` rewrites the
journal with one line per song, sorted, at the end of a run (engine.safe_files, atomically).
The journal is the one file opened by its final name: appends are flushed and fsynced, and a
line cut short by a kill is skipped on reading, so it too holds only whole records.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.safe_files import atomic_write_text

MANIFEST_NAME = "manifest.jsonl"

Record = dict[str, Any]


def content_hash(paths: Iterable[Path]) -> str:
    """sha256 over the names and bytes of `paths`, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def file_stamp(paths: Iterable[Path]) -> list[list[Any]]:
    """(name, size, mtime_ns) per file: a cheap check that inputs are unchanged since a record."""
    return [[path.name, (s := path.stat()).st_size, s.st_mtime_ns] for path in paths]


class Manifest:
    """Records by song id, loaded from and appended to `folder/manifest.jsonl`."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST_NAME
        self.records: dict[str, Record] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:  # a line cut short by a kill: the update is redone
                        continue
                    self.records[record["song_id"]] = record

    def update(self, song_id: str, /, **fields: Any) -> Record:
        """Merge `fields` into the song's record and append it to the journal (flushed, fsynced)."""
        record = {**self.records.get(song_id, {}), **fields, "song_id": song_id}
        self.records[song_id] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def compact(self) -> None:
        """Rewrite the journal with one line per song, sorted by song id (atomic replace)."""
        if not self.records:
            return
        atomic_write_text(self.path, "".join(json.dumps(self.records[k], sort_keys=True) + "\n" for k in sorted(self.records)))

    def ok(self, song_id: str) -> Record | None:
        """The song's record if its last status is ok."""
        record = self.records.get(song_id)
        return record if record is not None and record.get("status") == "ok" else None
