"""Workload records on disk: one JSON file per workload in `state_dir("workloads")`.

Every write goes to a temporary file in the same directory first, so a reader sees the old record or the new one,
never half of one: `save` renames it over the record, `create` links it to the record's name, which fails when the
name is taken (an exclusive create that is atomic even between two `hivegate run` racing for one name).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from hivegate.workloads.process import alive
from hivegate.workloads.record import LIVE, CorruptRecord, NameTaken, WorkloadRecord, check_name

__all__ = ["WorkloadStore"]


class WorkloadStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def default(cls) -> WorkloadStore:
        """The store in hivegate's state directory (`$HIVEGATE_STATE_DIR/workloads`, or the XDG state home)."""
        from hivegate.config.paths import state_dir

        return cls(state_dir("workloads"))

    def path(self, name: str) -> Path:
        return self.root / f"{check_name(name)}.json"

    def log_paths(self, name: str) -> tuple[Path, Path]:
        """Where a workload named `name` logs by default: (proxy log, server log)."""
        logs = self.root.parent / "logs"
        name = check_name(name)
        return logs / f"{name}.proxy.log", logs / f"{name}.server.log"

    def _write_temp(self, record: WorkloadRecord) -> str:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{record.name}.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(record.to_json())
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def create(self, record: WorkloadRecord) -> None:
        """Write a new record; NameTaken when one with this name exists."""
        target = self.path(record.name)
        tmp = self._write_temp(record)
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise NameTaken(f"a workload named {record.name!r} exists already") from None
        finally:
            os.unlink(tmp)

    def save(self, record: WorkloadRecord) -> None:
        """Replace the record (atomically)."""
        target = self.path(record.name)
        tmp = self._write_temp(record)
        try:
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def load(self, name: str) -> WorkloadRecord | None:
        """The record named `name` as it is on disk; None when there is none, CorruptRecord when unreadable."""
        path = self.path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorruptRecord(f"workload record {path}: {exc.strerror or exc}") from None
        try:
            record = WorkloadRecord.from_json(raw)
        except CorruptRecord as exc:
            raise CorruptRecord(f"workload record {path}: {exc}") from None
        if record.name != name:
            raise CorruptRecord(f"workload record {path}: names {record.name!r}")
        return record

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(name).unlink()

    def names(self) -> list[str]:
        try:
            files = sorted(self.root.glob("*.json"))
        except OSError:
            return []
        return [f.stem for f in files if not f.name.startswith(".")]

    def get(self, name: str) -> WorkloadRecord | None:
        """The record with its status brought up to date (see `refresh`)."""
        record = self.load(name)
        return None if record is None else self.refresh(record)

    def scan(self) -> tuple[list[WorkloadRecord], list[str]]:
        """Every readable record, refreshed, by name; and a one-line warning per record that could not be read."""
        records: list[WorkloadRecord] = []
        warnings: list[str] = []
        for name in self.names():
            try:
                record = self.get(name)
            except CorruptRecord as exc:
                warnings.append(f"ignoring {exc}")
                continue
            if record is not None:
                records.append(record)
        return records, warnings

    def refresh(self, record: WorkloadRecord) -> WorkloadRecord:
        """A live record whose process is gone becomes `crashed` (or `stopped` if a stop was under way); saved."""
        if record.status not in LIVE or alive(record.pid, record.pid_start):
            return record
        repaired = record.with_status("stopped" if record.status == "stopping" else "crashed")
        with contextlib.suppress(OSError, CorruptRecord):
            if self.load(record.name) == record:  # not rewritten meanwhile (by a `stop`, say)
                self.save(repaired)
        return repaired
