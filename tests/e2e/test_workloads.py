"""`hivegate run` in the background and the workload commands (`list`, `logs`, `stop`, `restart`, `rm`), driven
through the real CLI as a user would, with the state directory in a temporary directory."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.gateway import FIXTURE, fixture_command
from support.mcp_calls import call_tool

pytestmark = [pytest.mark.e2e]


class CLI:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.env = {**os.environ, "HIVEGATE_STATE_DIR": str(state)}
        self.pids: set[int] = set()  # every process the test saw, killed at the end if still there

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hivegate", *args]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True, timeout=60)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def listing(self, *extra: str) -> dict[str, dict[str, Any]]:
        return {w["name"]: w for w in json.loads(self.ok("list", "--format", "json", *extra))}

    def start(self, name: str, *extra: str) -> tuple[str, int]:
        out = self.ok("run", "--name", name, "-e", f"FIXTURE_STDERR_BANNER={name}-stderr", *extra, *fixture_command())
        first, _, rest = out.strip().partition(": running at ")
        assert first == name, out
        url, _, pid = rest.partition(" (pid ")
        self.pids.add(int(pid.rstrip(")")))
        return url, int(pid.rstrip(")"))


def gone(pid: int) -> bool:
    """No such process, or a zombie (nobody may reap it: a dead process all the same)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def in_group(pgid: int) -> list[int]:
    """Live processes whose process group or session is `pgid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] not in "ZX" and pgid in (int(fields[2]), int(fields[3])):
                found.append(int(entry.name))
    return found


def whoami(url: str) -> int:
    """Open an MCP session on `url` (a new stdio server process) and ask that process for its pid; the session
    stays open."""
    return int(call_tool(url, "whoami", {}, end=False))


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[CLI]:
    state = tmp_path / "state"
    runner = CLI(state)
    yield runner
    # Whatever happened above, leave nothing running.
    for record in (state / "workloads").glob("*.json"):
        pid = json.loads(record.read_text()).get("pid")
        if isinstance(pid, int):
            runner.pids.add(pid)
    for pid in runner.pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_background_workloads_from_start_to_removal(cli: CLI) -> None:
    port = free_port()
    alpha_url, alpha_pid = cli.start("alpha")
    beta_url, beta_pid = cli.start("beta", "--port", str(port))
    assert beta_url == f"http://127.0.0.1:{port}/mcp"
    assert alpha_pid != beta_pid

    first_child = whoami(alpha_url)  # a session: a stdio server process, which says hello on stderr
    cli.pids.add(first_child)

    table = cli.ok("list").splitlines()
    assert table[0].split() == ["NAME", "STATUS", "READY", "URL", "PID", "STARTED"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["alpha"][1:5] == ["running", "ready", alpha_url, str(alpha_pid)]
    assert rows["beta"][1:5] == ["running", "ready", beta_url, str(beta_pid)]
    listed = cli.listing()
    assert {name: (w["status"], w["url"], w["pid"], w["health"]) for name, w in listed.items()} == {
        "alpha": ("running", alpha_url, alpha_pid, {"ready": True, "detail": "ready"}),
        "beta": ("running", beta_url, beta_pid, {"ready": True, "detail": "ready"}),
    }

    # Two logs: the server's stderr, and the gateway's own.
    deadline = time.monotonic() + 10
    while f"alpha-stderr (pid {first_child})" not in (server_log := cli.ok("logs", "alpha")):
        assert time.monotonic() < deadline, server_log
        time.sleep(0.05)
    assert "Started server process" not in server_log
    proxy_log = cli.ok("logs", "alpha", "--proxy")
    assert f"hivegate: serving alpha (stdio: {' '.join(fixture_command()[1:])}) at {alpha_url}" in proxy_log
    assert "health: backend ok" in proxy_log  # the gateway's own start-up summary, not the server's
    assert "alpha-stderr" not in proxy_log

    # --follow prints what is there, then what comes: a second session starts a second server process.
    follower = subprocess.Popen(
        cli.argv("logs", "alpha", "--follow"), env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()

    def read_lines() -> None:
        for line in follower.stdout or []:
            lines.put(line)

    threading.Thread(target=read_lines, daemon=True).start()
    try:
        assert lines.get(timeout=10).startswith("alpha-stderr (pid ")
        second_child = whoami(alpha_url)
        cli.pids.add(second_child)
        seen = [lines.get(timeout=10)]
        while seen[-1] != f"alpha-stderr (pid {second_child})\n":
            seen.append(lines.get(timeout=10))
    finally:
        follower.terminate()
        follower.wait(10)

    # One name, one port.
    taken = cli("run", "--name", "alpha", *fixture_command())
    assert taken.returncode == 1
    assert taken.stderr.splitlines() == [
        f"hivegate run: error: a workload named 'alpha' is already running at {alpha_url}; "
        "stop it (`hivegate stop alpha`) or choose another --name"
    ]
    clash = cli("run", "--name", "gamma", "--port", str(port), *fixture_command())
    assert clash.returncode == 1
    assert clash.stderr.splitlines() == [
        f"hivegate run: error: --port {port} is already used by workload 'beta' ({beta_url})"
    ]
    assert set(cli.listing("--all")) == {"alpha", "beta"}

    # stop: the gateway and every server process it started are gone.
    assert cli.ok("stop", "alpha") == "alpha: stopped\n"
    for pid in (alpha_pid, first_child, second_child):
        assert gone(pid), pid
    assert in_group(alpha_pid) == []
    assert set(cli.listing()) == {"beta"}
    assert cli.listing("-a")["alpha"]["status"] == "stopped"
    assert "alpha" not in cli.ok("list")
    assert cli.ok("stop", "alpha") == "alpha: not running\n"

    # A gateway killed behind our back is `crashed`; restart brings it back at the same URL.
    beta_child = whoami(beta_url)
    cli.pids.add(beta_child)
    os.kill(beta_pid, signal.SIGKILL)
    assert wait_gone(beta_pid)
    assert cli.listing()["beta"]["status"] == "crashed"
    assert json.loads((cli.state / "workloads" / "beta.json").read_text())["status"] == "crashed"
    assert cli.ok("list").splitlines()[1].split()[:4] == ["beta", "crashed", "-", beta_url]
    assert wait_gone(beta_child)  # its stdin closed with the gateway

    out = cli.ok("restart", "beta")
    assert out.startswith(f"beta: running at {beta_url} (pid ")
    new_pid = int(out.rsplit(" ", 1)[1].rstrip(")\n"))
    cli.pids.add(new_pid)
    assert new_pid != beta_pid
    assert cli.listing()["beta"]["pid"] == new_pid
    cli.pids.add(whoami(beta_url))
    assert "hivegate: serving beta" in cli.ok("logs", "beta", "--proxy")

    # rm stops it and forgets it, logs included.
    logs = [Path(cli.listing()["beta"][key]) for key in ("proxy_log", "server_log")]
    assert cli.ok("rm", "beta") == "beta: removed\n"
    assert wait_gone(new_pid, timeout=0)
    assert not any(path.exists() for path in logs)
    assert set(cli.listing("-a")) == {"alpha"}

    for command in (["logs", "nosuch"], ["stop", "nosuch"], ["restart", "nosuch"], ["rm", "beta"]):
        done = cli(*command)
        assert done.returncode == 1
        assert done.stderr == f"hivegate {command[0]}: error: no workload named '{command[1]}'\n"


def test_a_gateway_that_cannot_start_reports_its_error(cli: CLI, tmp_path: Path) -> None:
    done = cli("run", "--name", "broken", "--authz-config", str(tmp_path / "missing.yaml"), *fixture_command())
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("hivegate run: error: authz config ")
    assert len(done.stderr.splitlines()) == 1
    assert cli.listing("-a") == {}
    assert cli.ok("list") == "no running workloads (`hivegate list -a` shows stopped ones)\n"


def test_an_unreadable_record_is_a_warning_not_a_traceback(cli: CLI) -> None:
    records = cli.state / "workloads"
    records.mkdir(parents=True)
    (records / "bad.json").write_text("{not json")
    done = cli("list", "-a")
    assert done.returncode == 0
    assert done.stdout == "no workloads\n"
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("hivegate list: warning: ignoring workload record ")
    stop = cli("stop", "bad")
    assert stop.returncode == 1
    assert "`hivegate rm bad` removes it" in stop.stderr
    assert cli.ok("rm", "bad") == "bad: removed\n"
    assert not (records / "bad.json").exists()


def test_a_background_run_never_says_running_for_a_workload_that_cannot_serve(cli: CLI, tmp_path: Path) -> None:
    """The issuer's keys cannot be fetched: `run` says so and exits 1, the workload stays (it may recover), and
    `list` shows why it is not ready."""
    issuer = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    auth = ["--oidc-issuer", issuer, "--oidc-audience", "mcp", "--jwks-allow-private-ip", "--ready-timeout", "1s"]
    done = cli("run", "--name", "keyless", *auth, *fixture_command())
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    record = cli.listing()["keyless"]
    cli.pids.add(record["pid"])
    assert line.startswith(f"hivegate run: error: keyless runs at {record['url']} (pid {record['pid']}) but is not "
                           "ready after 1s: keys: JWKS unavailable: ")  # fmt: skip
    assert line.endswith("`hivegate logs keyless --proxy` shows why; `hivegate stop keyless` stops it")
    assert record["status"] == "running"
    assert record["health"]["ready"] is False
    assert record["health"]["detail"].startswith("keys: JWKS unavailable: ")
    row = cli.ok("list").splitlines()[1].split()
    assert row[:4] == ["keyless", "running", "no:", "keys:"]


def test_restart_leaves_a_workload_running_when_it_could_not_start_again(cli: CLI, tmp_path: Path) -> None:
    server = tmp_path / "mcp-server"
    server.write_text("#!/bin/sh\nexec " + " ".join(fixture_command()[1:]) + "\n")
    server.chmod(0o755)
    out = cli.ok("run", "--name", "fragile", "--", str(server))
    pid = int(out.rsplit(" ", 1)[1].rstrip(")\n"))
    cli.pids.add(pid)
    server.unlink()  # e.g. a package uninstalled since
    done = cli("restart", "fragile")
    assert done.returncode == 2
    assert done.stderr == (
        f"hivegate restart: error: fragile could not start again, so it is left as it is: command '{server}' not "
        "found, or not executable\n"
    )
    assert not gone(pid)
    assert cli.listing()["fragile"]["status"] == "running"
    assert cli.listing()["fragile"]["pid"] == pid


def vmcp_config(path: Path, name: str, command: str) -> Path:
    """A vMCP config: one stdio backend (the fixture, run by `command`) that says hello on stderr."""
    path.write_text(
        f"name: {name}\nbackends:\n  - name: fx\n    command: {command}\n    args: [{FIXTURE}]\n"
        f"    env: {{FIXTURE_STDERR_BANNER: {name}-backend}}\nincomingAuth:\n  type: anonymous\n"
    )
    return path


def test_vmcp_serve_in_the_background_is_a_workload_like_any_other(cli: CLI, tmp_path: Path) -> None:
    config = vmcp_config(tmp_path / "vmcp.yaml", "team-tools", sys.executable)
    out = cli.ok("vmcp", "serve", "--background", "--config", str(config), "--port", "0")
    name, _, rest = out.strip().partition(": running at ")
    url, _, pid_text = rest.partition(" (pid ")
    pid = int(pid_text.rstrip(")"))
    cli.pids.add(pid)
    assert name == "team-tools"
    listed = cli.listing()["team-tools"]
    assert (listed["status"], listed["url"], listed["pid"], listed["kind"]) == ("running", url, pid, "vmcp")
    assert listed["health"] == {"ready": True, "detail": "ready"}
    assert cli.ok("list").splitlines()[1].split()[:4] == ["team-tools", "running", "ready", url]
    child = int(call_tool(url, "fx_whoami", {}))  # through the vMCP, to its stdio backend
    assert f"team-tools-backend (pid {child})" in cli.ok("logs", "team-tools")
    assert f"hivegate: serving virtual MCP server team-tools at {url}" in cli.ok("logs", "team-tools", "--proxy")

    out = cli.ok("restart", "team-tools")
    assert out.startswith(f"team-tools: running at {url} (pid ")  # the same port
    new_pid = int(out.rsplit(" ", 1)[1].rstrip(")\n"))
    cli.pids.add(new_pid)
    assert new_pid != pid
    assert wait_gone(pid)

    config.write_text(config.read_text().replace(sys.executable, str(tmp_path / "gone")))
    done = cli("restart", "team-tools")  # checked before the running one is stopped
    assert done.returncode == 2
    assert done.stderr.startswith("hivegate restart: error: team-tools could not start again, so it is left as it is: "
                                  f"backend 'fx': command '{tmp_path / 'gone'}' not found on PATH")  # fmt: skip
    assert cli.listing()["team-tools"]["pid"] == new_pid

    assert cli.ok("stop", "team-tools") == "team-tools: stopped\n"
    assert wait_gone(new_pid)
    assert cli.listing("-a")["team-tools"]["status"] == "stopped"
    assert cli.ok("rm", "team-tools") == "team-tools: removed\n"
    assert cli.listing("-a") == {}


def test_vmcp_serve_in_the_background_refuses_what_cannot_start(cli: CLI, tmp_path: Path) -> None:
    config = vmcp_config(tmp_path / "vmcp.yaml", "broken-tools", str(tmp_path / "no-such-server"))
    done = cli("vmcp", "serve", "-d", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr == (
        f"hivegate vmcp serve: backend 'fx': command '{tmp_path / 'no-such-server'}' not found on PATH (its env's "
        "PATH, else this one's): install it, or give its full path in `command`\n"
    )
    assert cli.listing("-a") == {}


def test_log_output_stdout_in_the_background_still_lands_in_the_proxy_log(cli: CLI) -> None:
    """A background workload's standard output and error both go to its proxy log, so `--log-output stdout` changes
    nothing there (its stdio server's stderr goes to the server log, as without the flag)."""
    url, _ = cli.start("gamma", "--log-format", "json", "--log-output", "stdout", "--log-level", "debug")
    logged = [json.loads(line) for line in cli.ok("logs", "gamma", "--proxy").splitlines()]  # every line JSON
    assert any(entry.get("url") == url and entry["msg"].startswith("hivegate: serving gamma") for entry in logged)
    assert any("Started server process" in entry["msg"] for entry in logged)  # uvicorn's, at debug
