"""`hivegate stop --all` through the real CLI, with two background workloads (each with a session, so each has an
MCP server process of its own) in a temporary state directory: both stop, `hivegate list -a` shows them stopped, and
no process of theirs is left."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2e.test_workloads import CLI, gone, in_group, whoami

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[CLI]:
    runner = CLI(tmp_path / "state")
    yield runner
    for record in (runner.state / "workloads").glob("*.json"):  # whatever happened above, leave nothing running
        pid = json.loads(record.read_text()).get("pid")
        if isinstance(pid, int):
            runner.pids.add(pid)
    for pid in runner.pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_stop_all_stops_every_workload_and_leaves_no_process(cli: CLI) -> None:
    alpha_url, alpha_pid = cli.start("alpha")
    beta_url, beta_pid = cli.start("beta")
    alpha_server, beta_server = whoami(alpha_url), whoami(beta_url)  # a stdio server process per session
    cli.pids |= {alpha_server, beta_server}
    assert {n: w["status"] for n, w in cli.listing().items()} == {"alpha": "running", "beta": "running"}
    assert in_group(alpha_pid)
    assert in_group(beta_pid)

    done = cli("stop", "--all")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["alpha: stopped", "beta: stopped"]
    assert done.stderr == ""

    for pid in (alpha_pid, beta_pid, alpha_server, beta_server):
        assert gone(pid), f"process {pid} is still running"
    assert in_group(alpha_pid) == []
    assert in_group(beta_pid) == []
    for url in (alpha_url, beta_url):
        with pytest.raises(httpx.ConnectError):
            httpx.post(url, json={}, timeout=5)

    stopped = cli.listing("-a")
    assert {n: w["status"] for n, w in stopped.items()} == {"alpha": "stopped", "beta": "stopped"}
    table = cli.ok("list", "-a").splitlines()
    assert table[0].split()[:2] == ["NAME", "STATUS"]
    assert sorted(line.split()[:2] for line in table[1:]) == [["alpha", "stopped"], ["beta", "stopped"]]
    assert cli.ok("list") == "no running workloads (`hivegate list -a` shows stopped ones)\n"

    assert cli.ok("stop", "--all") == "no running workloads\n"  # nothing left to stop: still a success
    both = cli("stop", "--all", "alpha")
    assert both.returncode == 2
    assert "give a workload NAME or --all" in both.stderr

    out = cli.ok("restart", "alpha")  # a stopped workload keeps its record: it can be started again
    assert out.startswith(f"alpha: running at {alpha_url} (pid ")
    cli.pids.add(int(out.rsplit(" ", 1)[1].rstrip(")\n")))
    assert {n: w["status"] for n, w in cli.listing("-a").items()} == {"alpha": "running", "beta": "stopped"}
    assert cli.ok("stop", "--all") == "alpha: stopped\n"  # only what runs: beta, stopped already, is not named
