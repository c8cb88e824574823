"""One workload's record: what `hivegate run` started in the background, where it listens and where it logs."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from hivegate.errors import HivegateError

__all__ = [
    "KINDS",
    "LIVE",
    "CorruptRecord",
    "NameTaken",
    "Status",
    "WorkloadError",
    "WorkloadRecord",
    "check_name",
    "utc_now",
]

Status = Literal["starting", "running", "stopping", "stopped", "crashed"]
Kind = Literal["run", "vmcp"]
KINDS: dict[Kind, tuple[str, ...]] = {"run": ("run",), "vmcp": ("vmcp", "serve")}
"""The command a workload of each kind is: `hivegate run ARGV` or `hivegate vmcp serve ARGV`."""
LIVE: tuple[Status, ...] = ("starting", "running", "stopping")

# The name becomes a file name: no separators, no leading dot, nothing a shell would trip on.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class WorkloadError(HivegateError):
    """A workload command cannot do what was asked; the message is one line, `code` the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class NameTaken(WorkloadError):
    """A record with this name exists already."""


class CorruptRecord(WorkloadError):
    """A record file that is not a workload record (bad JSON, missing or mistyped fields)."""


def check_name(name: str) -> str:
    """`name` when it is usable as a workload name, else WorkloadError (exit 2: it is bad input)."""
    if not _NAME.fullmatch(name):
        raise WorkloadError(
            f"invalid workload name {name!r}: use 1-63 letters, digits, '.', '_', '-', starting with a letter or digit",
            code=2,
        )
    return name


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class WorkloadRecord:
    """`argv` is what followed `hivegate run` (or `hivegate vmcp serve`, `kind` says which; restart replays it from
    `cwd`); `pid_start` is the process's start time in clock ticks (Linux), so a pid the kernel handed to another
    process is not mistaken for ours."""

    name: str
    status: Status
    pid: int | None
    pgid: int | None
    url: str | None
    host: str
    port: int
    argv: tuple[str, ...]
    cwd: str
    started_at: str
    proxy_log: str
    server_log: str
    pid_start: int | None = None
    group: str = "default"  # `--group`, as in ToolHive (`list --group` shows one group)
    labels: tuple[tuple[str, str], ...] = ()  # `--label KEY=VALUE`
    kind: Kind = "run"  # `hivegate run` or `hivegate vmcp serve --background`

    @property
    def command(self) -> str:
        """The command that started it, as its messages name it: `run` or `vmcp serve`."""
        return " ".join(KINDS[self.kind])

    def with_status(self, status: Status) -> WorkloadRecord:
        return replace(self, status=status)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        data["labels"] = dict(self.labels)
        return data

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> WorkloadRecord:
        """Parse a record; CorruptRecord names what is wrong."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptRecord(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise CorruptRecord("not a JSON object")
        try:
            record = cls(
                name=_field(data, "name", str),
                status=_field(data, "status", str),
                pid=_optional(data, "pid", int),
                pgid=_optional(data, "pgid", int),
                url=_optional(data, "url", str),
                host=_field(data, "host", str),
                port=_field(data, "port", int),
                argv=tuple(_field(data, "argv", list)),
                cwd=_field(data, "cwd", str),
                started_at=_field(data, "started_at", str),
                proxy_log=_field(data, "proxy_log", str),
                server_log=_field(data, "server_log", str),
                pid_start=_optional(data, "pid_start", int),
                group=_optional(data, "group", str) or "default",  # records written before groups have none
                labels=tuple((_optional(data, "labels", dict) or {}).items()),
                kind=_optional(data, "kind", str) or "run",  # records written before vMCP workloads have none
            )
        except (KeyError, TypeError) as exc:
            raise CorruptRecord(str(exc).strip("'\"")) from None
        if record.status not in get_args(Status):
            raise CorruptRecord(f"unknown status {record.status!r}")
        if record.kind not in KINDS:
            raise CorruptRecord(f"unknown kind {record.kind!r}")
        if not all(isinstance(arg, str) for arg in record.argv):
            raise CorruptRecord("argv: expected a list of strings")
        if not all(isinstance(key, str) and isinstance(value, str) for key, value in record.labels):
            raise CorruptRecord("labels: expected an object of strings")
        return record


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    if key not in data:
        raise KeyError(f"{key}: missing")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(data: dict[str, Any], key: str, kind: type) -> Any:
    return None if data.get(key) is None else _field(data, key, kind)
