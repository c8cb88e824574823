"""Processes without psutil: liveness from `kill(pid, 0)` and `/proc` (a zombie is dead; a reused pid is not ours),
descendants from `/proc/*/stat`, and stopping a process group with SIGTERM, then SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

__all__ = ["alive", "descendants", "start_time", "stop_group"]

_PROC = Path("/proc")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3, the state, is index 0), or None."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].decode().split()


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat); None without /proc."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def alive(pid: int | None, started: int | None = None) -> bool:
    """Whether `pid` runs (not a zombie) and, when `started` is known, is the process that started then."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    fields = _stat(pid)
    if fields is None:
        return True  # no /proc: kill(0) is all we know
    if fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def descendants(pid: int) -> dict[int, int]:
    """Children, grandchildren… of `pid` as {pid: start time}; empty without /proc."""
    parents: dict[int, list[tuple[int, int]]] = {}
    try:
        entries = [int(e.name) for e in _PROC.iterdir() if e.name.isdigit()]
    except OSError:
        return {}
    for child in entries:
        fields = _stat(child)
        if fields and fields[0] not in ("Z", "X"):
            parents.setdefault(int(fields[1]), []).append((child, int(fields[19])))
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child, started in parents.get(todo.pop(), []):
            if child not in found:
                found[child] = started
                todo.append(child)
    return found


def _wait_gone(pids: dict[int, int | None], deadline: float) -> bool:
    while any(alive(p, s) for p, s in pids.items()):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(pid: int, pgid: int, started: int | None, timeout: float) -> bool:
    """Stop the process `pid` and its group `pgid`: SIGTERM, up to `timeout` seconds, then SIGKILL. Descendants in
    other sessions (a stdio server runs in its own) get the same treatment once the leader is gone: the gateway shuts
    them down itself when it can, and if it could not they are killed rather than left behind. True when nothing
    is left running."""
    if not alive(pid, started):
        return True
    family: dict[int, int | None] = dict(descendants(pid))
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid, started) and time.monotonic() < deadline:
        family.update(descendants(pid))
        time.sleep(0.05)
    if alive(pid, started):
        family.update(descendants(pid))
        _signal_group(pgid, signal.SIGKILL)
        _wait_gone({pid: started}, time.monotonic() + 5)
    # Left-overs: give them a moment to notice their closed stdin, then kill their whole group.
    if not _wait_gone(family, time.monotonic() + min(2.0, timeout)):
        for child, child_started in family.items():
            if alive(child, child_started):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    group = os.getpgid(child)
                    if group != os.getpgrp():
                        _signal_group(group, signal.SIGKILL)
                    else:
                        os.kill(child, signal.SIGKILL)
        _wait_gone(family, time.monotonic() + 5)
    return not alive(pid, started) and not any(alive(p, s) for p, s in family.items())
