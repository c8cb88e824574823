"""Reading a workload's log file, once or following it (`tail -F`): a file truncated under us is read again from
its start, a file renamed away (rotated) is read to its end and then its successor from the start."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["Follower", "follow", "route_server_stderr"]

_CHUNK = 64 * 1024


class Follower:
    """Hands out what was appended to `path` since the last call to `read`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._inode: tuple[int, int] | None = None

    def _open(self) -> bool:
        try:
            self._file = self.path.open("rb")
        except OSError:
            return False
        st = os.fstat(self._file.fileno())
        self._inode = (st.st_dev, st.st_ino)
        return True

    def read(self) -> bytes:
        """New bytes (b"" when there are none)."""
        if self._file is None and not self._open():
            return b""
        assert self._file is not None
        try:
            if os.fstat(self._file.fileno()).st_size < self._file.tell():  # truncated: start over
                self._file.seek(0)
        except OSError:
            pass
        data = self._drain()
        try:
            st = self.path.stat()
            moved = (st.st_dev, st.st_ino) != self._inode
        except OSError:
            moved = False  # renamed away and no successor yet: keep the old one
        if moved:  # rotated: what is left of the old file, then the new one from its start
            self.close()
            if self._open():
                data += self._drain()
        return data

    def _drain(self) -> bytes:
        assert self._file is not None
        parts = []
        while chunk := self._file.read(_CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None


def follow(
    path: Path,
    out: BinaryIO,
    *,
    running: Callable[[], bool],
    interval: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Copy `path` to `out` and keep copying what is appended until `running()` turns false (then copy the rest).
    Only whole lines are written while following, so two writes never split one line."""
    follower = Follower(path)
    pending = b""
    try:
        while True:
            data = follower.read()
            if data:
                pending += data
                cut = pending.rfind(b"\n") + 1
                if cut:
                    out.write(pending[:cut])
                    out.flush()
                    pending = pending[cut:]
                continue
            if not running():
                pending += follower.read()
                break
            sleep(interval)
    finally:
        follower.close()
        if pending:
            out.write(pending)
        out.flush()


class _StderrLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = str(getattr(record, "stderr_line", record.getMessage()))
        dropped = getattr(record, "dropped", 0)
        return f"{line} (hivegate: {dropped} more lines dropped)" if dropped else line


def route_server_stderr(path: str) -> None:
    """In a background workload: the stdio server's stderr lines go, as they are and whatever `--log-level` says, to
    `path` and nowhere else; standard output (a file: the proxy log) is flushed line by line."""
    handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    handler.setFormatter(_StderrLine())
    stderr_logger = logging.getLogger("hivegate.server.stderr")
    for old in list(stderr_logger.handlers):
        stderr_logger.removeHandler(old)
    stderr_logger.addHandler(handler)
    stderr_logger.propagate = False
    stderr_logger.setLevel(logging.INFO)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
