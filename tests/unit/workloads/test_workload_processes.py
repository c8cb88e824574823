"""Process checks without psutil, stopping a process group with no orphans, and the background child's command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hivegate.cli.main import build_parser
from hivegate.cli.run import config_from_args
from hivegate.workloads import SERVER_LOG_FLAG, alive, child_command, descendants, pin_port, start_time, stop_group

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

# A stand-in for the gateway: starts a child in a session of its own (as the stdio transport does), prints both
# pids, then waits; with "stubborn" it ignores SIGTERM.
GATEWAY = """
import signal, subprocess, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


def start_gateway(mode: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", GATEWAY, mode], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    return proc, child


@needs_proc
def test_a_zombie_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not alive(proc.pid)
    proc.wait()
    assert not alive(proc.pid)


def test_liveness_of_this_process() -> None:
    assert alive(None) is False
    assert alive(0) is False
    assert alive(os.getpid(), start_time(os.getpid()))


@needs_proc
@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_stopping_a_group_leaves_no_process_behind(mode: str) -> None:
    proc, child = start_gateway(mode)
    try:
        assert child in descendants(proc.pid)
        started = time.monotonic()
        assert stop_group(proc.pid, proc.pid, start_time(proc.pid), timeout=0.5)
        proc.wait(5)
        assert not alive(child)
        if mode == "stubborn":
            assert time.monotonic() - started >= 0.5  # SIGTERM first, SIGKILL after the timeout
    finally:
        proc.kill()
        proc.wait()
        if alive(child):
            os.kill(child, 9)


def test_stopping_a_process_that_is_gone_is_done() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert stop_group(proc.pid, proc.pid, None, timeout=1)


def test_the_port_is_pinned_where_it_wins() -> None:
    parser = build_parser()
    with_command = pin_port(["--port", "0", "--name", "x", "--", "server", "--port", "1"], 8080)
    assert with_command == ["--port", "0", "--name", "x", "--port", "8080", "--", "server", "--port", "1"]
    args = parser.parse_args(["run", *with_command])
    assert args.port == 8080
    assert args.target == ["server", "--port", "1"]
    remote = pin_port(["https://mcp.example.com/mcp", "--port", "0"], 9000)
    assert parser.parse_args(["run", *remote]).port == 9000


def test_the_background_child_is_the_same_run_in_the_foreground(tmp_path: Path) -> None:
    argv = ["--name", "fetch", "--port", "8080", "-e", "A=1", "--", "uvx", "mcp-server-fetch"]
    command = child_command(argv, tmp_path / "fetch.server.log")
    assert command[:4] == [sys.executable, "-m", "hivegate", "run"]
    parser = build_parser()
    child = parser.parse_args(command[3:])
    user = parser.parse_args(["run", *argv])
    assert child.foreground
    assert not user.foreground
    assert child.workload_server_log == str(tmp_path / "fetch.server.log")
    assert SERVER_LOG_FLAG in command
    assert config_from_args(child) == config_from_args(user)
