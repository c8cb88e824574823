"""Following a workload's log: appended lines, truncation, rotation; and where the server's stderr goes."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hivegate.workloads import Follower, follow
from hivegate.workloads.logs import route_server_stderr

if TYPE_CHECKING:
    from typing_extensions import Buffer


def test_appended_bytes_are_handed_out_once(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    follower = Follower(log)
    assert follower.read() == b""  # no file yet
    log.write_bytes(b"one\n")
    assert follower.read() == b"one\n"
    assert follower.read() == b""
    with log.open("ab") as f:
        f.write(b"two\n")
    assert follower.read() == b"two\n"
    follower.close()


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"a long first line\n")
    follower = Follower(log)
    assert follower.read() == b"a long first line\n"
    with log.open("r+b") as f:  # copytruncate, then a new line
        f.truncate(0)
        f.write(b"new\n")
    assert follower.read() == b"new\n"
    follower.close()


def test_a_rotated_file_is_read_to_its_end_then_its_successor(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"old 1\n")
    follower = Follower(log)
    assert follower.read() == b"old 1\n"
    with log.open("ab") as f:
        f.write(b"old 2\n")
    os.rename(log, tmp_path / "a.log.1")
    assert follower.read() == b"old 2\n"  # nothing in its place yet: keep reading the old one
    log.write_bytes(b"new 1\n")
    assert follower.read() == b"new 1\n"
    follower.close()


def test_follow_writes_whole_lines_until_the_workload_ends(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"start\n")
    steps: list[Callable[[], None]] = [
        lambda: log.open("ab").close(),
        lambda: _append(log, b"half a "),
        lambda: _append(log, b"line\nand a tail"),
    ]
    writes: list[bytes] = []

    class Out(io.BytesIO):
        def write(self, data: Buffer, /) -> int:
            writes.append(bytes(data))
            return super().write(data)

    out = Out()

    def sleep(seconds: float) -> None:
        steps.pop(0)()

    follow(log, out, running=lambda: bool(steps), interval=0.01, sleep=sleep)
    assert out.getvalue() == b"start\nhalf a line\nand a tail"
    assert writes == [b"start\n", b"half a line\n", b"and a tail"]


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


@pytest.fixture
def stderr_logger() -> Iterator[logging.Logger]:
    stderr_logger = logging.getLogger("hivegate.server.stderr")
    saved = (list(stderr_logger.handlers), stderr_logger.propagate, stderr_logger.level)
    yield stderr_logger
    for handler in list(stderr_logger.handlers):
        stderr_logger.removeHandler(handler)
        handler.close()
    for handler in saved[0]:
        stderr_logger.addHandler(handler)
    stderr_logger.propagate, stderr_logger.level = saved[1], saved[2]


def test_in_a_background_workload_server_stderr_goes_to_its_own_file_only(
    tmp_path: Path, stderr_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stdout)
    server_log = tmp_path / "fetch.server.log"
    route_server_stderr(str(server_log))
    logging.getLogger().setLevel(logging.ERROR)  # the proxy's --log-level does not hide the server's stderr
    with caplog.at_level(logging.ERROR):
        stderr_logger.info("%s: %s", "fetch", "Starting server", extra={"stderr_line": "Starting server"})
    assert server_log.read_text() == "Starting server\n"
    assert caplog.records == []
    assert stdout.line_buffering
