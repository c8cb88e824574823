"""`hivegate run --workers 2` in front of a real stdio MCP server: every session works whichever worker a connection
reaches, a session's calls all land on its one stdio process, and a worker that dies is started again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.gateway import REPO, hivegate_run
from support.mcp_calls import ACCEPT, INIT

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PID_SERVER = ["--", sys.executable, os.path.join(REPO, "tests", "fixtures", "pid_server.py")]


def workers_of(parent: int) -> set[int]:
    """The worker processes of the gateway: its children with its command line (forks of it)."""
    found = set()
    mine = Path(f"/proc/{parent}/cmdline").read_bytes()
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and command == mine:
            found.add(int(entry.name))
    return found


@dataclass
class Client:
    """Plain MCP calls, every request on a connection of its own (no keep-alive): the kernel may hand each one to
    either worker."""

    url: str
    http: httpx.AsyncClient

    async def post(self, body: dict[str, Any], session: str | None = None) -> httpx.Response:
        headers = {**ACCEPT, **({"Mcp-Session-Id": session} if session else {})}
        return await self.http.post(self.url, json=body, headers=headers)

    async def open_session(self) -> str:
        resp = await self.post(INIT)
        assert resp.status_code == 200, resp.text
        session = resp.headers["mcp-session-id"]
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.post(note, session)).status_code == 202
        return session

    async def whoami(self, session: str) -> str:
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
        resp = await self.post(call, session)
        assert resp.status_code == 200, resp.text
        return str(json.loads(resp.text)["result"]["content"][0]["text"])


async def test_sessions_stay_on_their_worker_and_a_dead_worker_comes_back() -> None:
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with (
        hivegate_run(["--workers", "2", "--anonymous", *PID_SERVER]) as gw,
        httpx.AsyncClient(timeout=10, limits=fresh) as http,
    ):
        client = Client(gw.url, http)
        sessions = await asyncio.gather(*(client.open_session() for _ in range(4)))
        assert {s.split(".")[0] for s in sessions} <= {"w0", "w1"}
        # every call of a session, whichever worker its connection reached, lands on the session's one process
        pids = await asyncio.gather(*(asyncio.gather(*(client.whoami(s) for _ in range(4))) for s in sessions))
        assert all(len(set(per_session)) == 1 for per_session in pids), pids
        assert len({p[0] for p in pids}) == 4  # one stdio process per session

        workers = workers_of(gw.process.pid)
        assert len(workers) == 2
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        async with asyncio.timeout(10):
            while len(workers_of(gw.process.pid) - {victim}) < 2:
                await asyncio.sleep(0.05)
        # the workers serve new sessions again; the dead worker's sessions are gone (404: the client initializes
        # a new one), the other worker's still work
        again = await asyncio.gather(*(client.open_session() for _ in range(2)))
        assert all(await asyncio.gather(*(client.whoami(s) for s in again)))
        ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
        by_worker: dict[str, set[int]] = {}
        for s in sessions:
            by_worker.setdefault(s.split(".")[0], set()).add((await client.post(ping, s)).status_code)
        assert all(codes in ({200}, {404}) for codes in by_worker.values()), by_worker
        assert any("starting it again" in line for line in gw.stderr)
