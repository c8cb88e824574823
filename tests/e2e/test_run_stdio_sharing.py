"""`hivegate run` with `--stdio-idle-timeout` and `--stdio-sharing` (and a vMCP stdio backend with `stdioSharing`):
a real SDK stdio server behind the gateway, called by the official MCP SDK client."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from e2e.test_run_stdio import sdk_client, text_of
from support.backend import free_port
from support.gateway import FIXTURE, fixture_command, hivegate_run, hivegate_vmcp
from support.mcp_calls import ACCEPT, INIT

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def scrape(port: int, name: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        body = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    match = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    assert match is not None, name
    return float(match.group(1))


async def until_metric(port: int, name: str, value: float) -> None:
    async with asyncio.timeout(15):
        while await scrape(port, name) != value:
            await asyncio.sleep(0.05)


# The tests that look at the gateway's own children (their pids, that they are reaped) start their servers cold:
# from the warm interpreter (tests/fixtures/warm_start.py) the server is not the gateway's child.
COLD = {"FIXTURE_WARM_START": "off"}


def servers_of(gateway: int) -> list[int]:
    """The fixture server processes the gateway started (its children running `stdio_server.py`)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == gateway and b"stdio_server.py" in command:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_an_idle_stdio_server_is_stopped_and_the_session_carries_on() -> None:
    diag = free_port()
    args = ["--stdio-idle-timeout", "300ms", "--diagnostics-port", str(diag), *fixture_command()]
    async with hivegate_run(args, env=COLD) as gw, sdk_client(gw.url) as client:  # `alive`: the gateway reaps it
        first = int(text_of(await client.call_tool("whoami", {})))
        await until_metric(diag, "hivegate_stdio_idle_stops_total", 1)
        await until_metric(diag, "hivegate_stdio_processes", 0)
        async with asyncio.timeout(5):
            while alive(first):
                await asyncio.sleep(0.02)
        assert text_of(await client.call_tool("echo", {"text": "still here"})) == "still here"
        second = int(text_of(await client.call_tool("whoami", {})))
        assert second != first  # a new process, in the same client session, with no error seen by the client


async def test_shared_mode_serves_twenty_sessions_from_one_process_each_with_its_own_answers() -> None:
    diag = free_port()
    args = ["--stdio-sharing", "shared", "--diagnostics-port", str(diag), *fixture_command()]
    async with hivegate_run(args) as gw:

        async def one(n: int) -> tuple[str, str, list[str]]:
            progress: list[str] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append(f"{value:g}/{total:g}")

            async with sdk_client(gw.url) as client:
                echoed = text_of(await client.call_tool("echo", {"text": f"session {n}"}))
                done = await client.call_tool("progress", {"steps": 2 + n % 3}, progress_callback=on_progress)
                assert text_of(done) == "done"
                return echoed, text_of(await client.call_tool("whoami", {})), progress

        results = await asyncio.gather(*(one(n) for n in range(20)))
        assert [echoed for echoed, _, _ in results] == [f"session {n}" for n in range(20)]
        for n, (_, _, progress) in enumerate(results):
            steps = 2 + n % 3
            assert progress == [f"{step}/{steps}" for step in range(1, steps + 1)]  # its own, none of the others'
        assert len({pid for _, pid, _ in results}) == 1
        assert await scrape(diag, "hivegate_stdio_processes") == 1


async def test_a_pool_spreads_sessions_and_refuses_the_logging_level() -> None:
    args = ["--stdio-sharing", "pool=2", *fixture_command()]
    async with hivegate_run(args) as gw, sdk_client(gw.url) as a, sdk_client(gw.url) as b, sdk_client(gw.url) as c:
        pids = [text_of(await s.call_tool("whoami", {})) for s in (a, b, c)]
        assert len(set(pids)) == 2  # least loaded: a and b on their own process each, c beside one of them
        async with httpx.AsyncClient(timeout=30) as http:
            opened = await http.post(gw.url, json=INIT, headers=ACCEPT)
            headers = {**ACCEPT, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
            level = {"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "debug"}}
            refused = (await http.post(gw.url, json=level, headers=headers)).json()
        assert refused["id"] == 2
        assert "shared by several sessions" in refused["error"]["message"]


async def test_a_vmcp_stdio_backend_shared_by_every_session(tmp_path: Path) -> None:
    config = {
        "name": "shared",
        "incomingAuth": {"type": "anonymous"},
        "backends": [{"name": "local", "command": sys.executable, "args": [FIXTURE], "stdioSharing": "shared"}],
    }
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump(config))
    async with (
        hivegate_vmcp(["--config", str(path), "--port", "0"], env=COLD) as gw,
        sdk_client(gw.url) as a,
        sdk_client(gw.url) as b,
    ):
        pids = {text_of(await s.call_tool("local_whoami", {})) for s in (a, b)}
        assert len(pids) == 1
        assert servers_of(gw.process.pid) == [int(pids.pop())]  # the discovery session shares it too
        echoed = await asyncio.gather(*(s.call_tool("local_echo", {"text": who}) for s, who in ((a, "a"), (b, "b"))))
        assert [text_of(r) for r in echoed] == ["a", "b"]


async def test_a_vmcp_client_sessions_stdio_process_is_stopped_when_idle(tmp_path: Path) -> None:
    config = {
        "name": "idle",
        "incomingAuth": {"type": "anonymous"},
        "operational": {"stdioIdleTimeout": "300ms"},
        "backends": [{"name": "local", "command": sys.executable, "args": [FIXTURE]}],
    }
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump(config))
    async with hivegate_vmcp(["--config", str(path), "--port", "0"], env=COLD) as gw, sdk_client(gw.url) as client:
        first = int(text_of(await client.call_tool("local_whoami", {})))
        assert first in servers_of(gw.process.pid)
        async with asyncio.timeout(15):
            while alive(first):
                await asyncio.sleep(0.05)
        assert len(servers_of(gw.process.pid)) == 1  # the discovery session's own process stays
        second = int(text_of(await client.call_tool("local_whoami", {})))
        assert second != first
