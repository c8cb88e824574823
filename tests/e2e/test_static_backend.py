"""HAProxy as the trivial MCP backend of `benchmarks/workers_bench.py` (`static_backend.py`): it answers as an MCP
server does, directly and through a real `hivegate run --workers 2`, or the benchmark measures errors."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.gateway import hivegate_run

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def static_backend(tmp_path: Path) -> Iterator[str]:
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        if os.environ.get("CI"):
            pytest.fail("haproxy not found: scripts/install-test-deps.sh installs it (Debian's haproxy package)")
        pytest.skip("haproxy is not installed (run scripts/install-test-deps.sh, or apt-get install haproxy)")
    sys.path.insert(0, str(BENCH))
    from harness import Processes  # type: ignore[import-not-found]
    from static_backend import start  # type: ignore[import-not-found]

    with Processes(log_dir=tmp_path) as procs:
        _, url = start(procs, tmp_path)
        yield url


async def test_the_static_backend_answers_as_an_mcp_server(static_backend: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        init = {"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {}}
        resp = await http.post(static_backend, json=init, headers=ACCEPT)
        assert resp.status_code == 200
        assert resp.headers["mcp-session-id"]
        assert resp.json()["id"] == 7
        assert resp.json()["result"]["protocolVersion"]
        call = {"jsonrpc": "2.0", "id": "call-1", "method": "tools/call", "params": {"name": "echo"}}
        resp = await http.post(static_backend, json=call, headers=ACCEPT)
        assert resp.json() == {
            "jsonrpc": "2.0",
            "id": "call-1",
            "result": {"content": [{"type": "text", "text": "ok"}], "isError": False},
        }
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post(static_backend, json=note, headers=ACCEPT)).status_code == 202
        assert (await http.get(static_backend, headers=ACCEPT)).status_code == 405
        assert (await http.delete(static_backend, headers=ACCEPT)).status_code == 200


@pytest.mark.parametrize("request_id", [1, 1_234_567, -3, "call-1"])
async def test_only_the_requests_own_id_and_method_count(static_backend: str, request_id: int | str) -> None:
    # a tool's arguments naming `id`, `method` or initialize change nothing
    arguments = {"id": "abc", "method": "initialize", "q": "notifications/initialized"}
    call = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"arguments": arguments}}
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await http.post(static_backend, json=call, headers=ACCEPT)
    assert resp.status_code == 200
    assert "mcp-session-id" not in resp.headers
    assert resp.json() == {"jsonrpc": "2.0", "id": request_id, "result": {"content": [{"type": "text", "text": "ok"}],
                                                                       "isError": False}}  # fmt: skip


async def test_it_serves_sessions_through_two_workers(static_backend: str) -> None:
    async with (
        hivegate_run(["--workers", "2", "--anonymous", static_backend]) as gw,
        httpx.AsyncClient(timeout=5) as http,
    ):
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}
        resp = await http.post(gw.url, json=init, headers=ACCEPT)
        assert resp.status_code == 200, resp.text
        session = {"Mcp-Session-Id": resp.headers["mcp-session-id"], **ACCEPT}
        calls = [{"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "echo"}} for n in range(1, 9)]
        answers = await asyncio.gather(*(http.post(gw.url, json=call, headers=session) for call in calls))
    assert sorted(a.json()["id"] for a in answers) == list(range(1, 9))
    assert all(a.json()["result"]["isError"] is False for a in answers)
