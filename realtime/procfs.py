"""Reading other processes from Linux's /proc: the engine's CPU time, a process's children
(tests and benchmarks find the engine process under the control process), resident memory.
Every function answers None or an empty list where /proc has no such process (or no /proc)."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: field 0 is the state, 1 the parent's pid, 11 and
    12 user and system time in clock ticks (proc(5) numbers them from 3)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of `pid` so far."""
    fields = stat_fields(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def is_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for its parent counts as gone)."""
    fields = stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid`."""
    found = []
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    tree, frontier = [pid], [pid]
    while frontier:
        kids = children(frontier.pop())
        tree += kids
        frontier += kids
    return tree


def command_line(pid: int) -> bytes:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def resident_mib(pid: int) -> float:
    """Resident memory of `pid` in MiB (0 when it is gone)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
