"""Start a workload in the background, as `thv run` does: `hivegate run --foreground ...` (or `hivegate vmcp serve
--foreground ...`) in a session of its own, its standard output and error appended to the proxy log, and wait until
it prints that it serves, or exits."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from hivegate.workloads.process import start_time, stop_group
from hivegate.workloads.record import KINDS, Kind, WorkloadError, WorkloadRecord, utc_now
from hivegate.workloads.store import WorkloadStore

__all__ = ["SERVER_LOG_FLAG", "StartFailed", "child_command", "launch", "pin_port"]

SERVER_LOG_FLAG = "--workload-server-log"
"""Hidden `hivegate run` (and `vmcp serve`) flag: the background child sends its stdio servers' stderr to this file
only."""

_SERVING = re.compile(r"^hivegate: serving .+ at (?P<url>http\S+)$")
_ERROR = "hivegate run: error: "
# The lines with which a foreground child says why it cannot start, by kind.
_FAILED: dict[Kind, tuple[str, ...]] = {"run": (_ERROR,), "vmcp": ("hivegate vmcp serve: ",)}


class StartFailed(WorkloadError):
    """The background gateway exited (or never served); `line` is what to tell the user, `code` the exit code."""

    def __init__(self, line: str, code: int, *, keep_log: bool = False) -> None:
        super().__init__(line, code)
        self.line = line
        self.keep_log = keep_log  # the line points at the log: a new workload's record goes, its logs stay


def child_command(argv: Sequence[str], server_log: Path, kind: Kind = "run") -> list[str]:
    """The foreground `hivegate run` (or `vmcp serve`) that a background workload is."""
    return [sys.executable, "-m", "hivegate", *KINDS[kind], "--foreground", SERVER_LOG_FLAG, str(server_log), *argv]


def pin_port(argv: Sequence[str], port: int) -> list[str]:
    """`argv` with `--port PORT` where it overrides an earlier one: before the `--` that starts the command."""
    args = list(argv)
    at = args.index("--") if "--" in args else len(args)
    return [*args[:at], "--port", str(port), *args[at:]]


def launch(store: WorkloadStore, record: WorkloadRecord, *, fresh: bool, timeout: float = 30.0) -> WorkloadRecord:
    """Start `record` (already in the store, status `starting`) and return it `running` with its URL and pid.

    `fresh`: a new workload (its logs start empty; if it fails, its record goes). Otherwise a restart (logs are
    appended to; if it fails, the record stays, `crashed`). Raises StartFailed."""
    proxy_log, server_log = Path(record.proxy_log), Path(record.server_log)
    argv = pin_port(record.argv, record.port) if record.port else list(record.argv)
    try:
        proxy_log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in (proxy_log, server_log):
            with path.open("wb" if fresh else "ab"):
                path.chmod(0o600)
        with proxy_log.open("ab") as log:
            offset = os.fstat(log.fileno()).st_size
            proc = subprocess.Popen(
                child_command(argv, server_log, record.kind),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=record.cwd,
                start_new_session=True,
            )
    except OSError as exc:
        _give_up(store, record, fresh)
        raise StartFailed(f"{_said(record)}cannot start {record.name!r}: {exc.strerror or exc}", 1) from None
    record = replace(record, pid=proc.pid, pgid=proc.pid, pid_start=start_time(proc.pid), started_at=utc_now())
    store.save(record)
    try:
        url = _wait_serving(proc, proxy_log, offset, timeout, _FAILED[record.kind], _said(record))
    except StartFailed as exc:
        stop_group(proc.pid, proc.pid, record.pid_start, 5.0)
        _give_up(store, replace(record, pid=None, pgid=None, pid_start=None), fresh, keep_log=exc.keep_log)
        raise
    except KeyboardInterrupt:
        stop_group(proc.pid, proc.pid, record.pid_start, 5.0)
        _give_up(store, replace(record, pid=None, pgid=None, pid_start=None), fresh)
        raise StartFailed(f"hivegate {record.command}: interrupted", 130) from None
    port = urlsplit(url).port or record.port
    record = replace(record, status="running", url=url, port=port)
    store.save(record)
    return record


def _serving_url(line: str) -> str | None:
    """The URL of a `hivegate: serving ... at URL` line, as text or as JSON (`--log-format json`)."""
    if line.startswith("{"):
        try:
            found = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        url = found.get("url") if isinstance(found, dict) else None
        message = found.get("msg") if isinstance(found, dict) else None
        ok = isinstance(url, str) and isinstance(message, str) and message.startswith("hivegate: serving ")
        return url if ok else None
    match = _SERVING.match(line)
    return match.group("url") if match else None


def _wait_serving(
    proc: subprocess.Popen[bytes],
    log: Path,
    offset: int,
    timeout: float,
    failed: tuple[str, ...] = (_ERROR,),
    said: str = _ERROR,
) -> str:
    """The URL from the child's `hivegate: serving ... at URL` line; StartFailed if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    with log.open("rb") as f:
        f.seek(offset)
        pending = b""
        while True:
            code = proc.poll()
            pending += f.read()
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace").rstrip()
                url = _serving_url(line)
                if url is not None and code is None:
                    return url
                if line:
                    lines.append(line)
            if code is not None:
                if pending.strip():
                    lines.append(pending.decode(errors="replace").rstrip())
                break
            if time.monotonic() >= deadline:
                why = f"; its last line: {lines[-1]}" if lines else ""
                line = f"{said}the gateway did not start serving within {timeout:g}s{why} (log: {log})"
                raise StartFailed(line, 1, keep_log=True)
            time.sleep(0.02)
    exit_code = code if code and code > 0 else 1
    errors = [line for line in lines if line.startswith(failed)]
    if errors:
        raise StartFailed(errors[-1], exit_code)
    why = f": {lines[-1]}" if lines else ""
    raise StartFailed(
        f"{said}the gateway exited with code {code} before serving{why} (log: {log})", exit_code, keep_log=True
    )


def _said(record: WorkloadRecord) -> str:
    """How this start's own error lines begin: `hivegate run: error: ` or `hivegate vmcp serve: error: `."""
    return f"hivegate {record.command}: error: "


def _give_up(store: WorkloadStore, record: WorkloadRecord, fresh: bool, *, keep_log: bool = False) -> None:
    """A new workload that failed to start leaves no record, and no logs unless the error points there."""
    if fresh:
        store.delete(record.name)
        for path in () if keep_log else (record.proxy_log, record.server_log):
            with contextlib.suppress(OSError):
                os.unlink(path)
    else:
        store.save(replace(record, status="crashed"))
