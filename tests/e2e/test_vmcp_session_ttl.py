"""`hivegate vmcp serve` with a short `sessionStorage.ttl`, through the real CLI: a client session left idle longer
than the TTL is gone (404, JSON-RPC -32001, its stdio backend process ended) while one in use lives on, and a fresh
`initialize` works; with Redis, the expired session cannot be resumed at another replica either, while the one in
use can."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import httpx
import pytest

from e2e.test_vmcp_aggregation import McpClient, connect, stdio_backend, write_config
from support.gateway import RunningGateway, hivegate_vmcp
from support.redis_server import start_redis

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TTL = "1s"
IDLE = 3.0  # > TTL + the idle sweep's period (1 s at this TTL): the idle session has been swept for sure


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


async def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def keep_busy(client: McpClient, seconds: float) -> None:
    """Use `client`'s session every 0.3 s for `seconds` (each use must succeed): it never idles a whole TTL."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert await client.text("tools_echo", text="still here") == "still here"
        await asyncio.sleep(0.3)


async def replicas(stack: contextlib.AsyncExitStack, path: str) -> list[RunningGateway]:
    """Two replicas of one config, started side by side (each is stopped when `stack` closes, even if the other
    failed to start)."""
    started = await asyncio.gather(
        *(stack.enter_async_context(hivegate_vmcp(["--config", path, "--port", "0"])) for _ in range(2)),
        return_exceptions=True,
    )
    for result in started:
        if isinstance(result, BaseException):
            raise result
    return [r for r in started if not isinstance(r, BaseException)]


def assert_session_gone(answer: httpx.Response) -> None:
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == -32001, answer.text


async def test_a_session_idle_past_the_ttl_answers_404_while_one_in_use_lives_on(tmp_path: Path) -> None:
    path = write_config(tmp_path, [stdio_backend("tools")], sessionStorage={"ttl": TTL})
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        idle = await connect(http, gateway)
        idle_backend = int(await idle.text("tools_whoami"))  # the stdio process serving this session
        busy = await connect(http, gateway)
        assert await busy.text("tools_echo", text="hi") == "hi"

        await keep_busy(busy, IDLE)

        assert_session_gone(await idle.call("tools_echo", text="too late"))
        assert_session_gone(await idle.rpc("tools/list"))
        assert await wait_gone(idle_backend), "the expired session's stdio backend process is still running"
        gone_delete = await http.delete(gateway.url, headers={"mcp-session-id": str(idle.session)})
        assert gone_delete.status_code == 404

        assert await busy.text("tools_echo", text="alive") == "alive"  # used within every TTL: not expired
        fresh = await connect(http, gateway)
        assert fresh.session != idle.session
        assert await fresh.text("tools_echo", text="new session") == "new session"
        assert int(await fresh.text("tools_whoami")) != idle_backend


async def test_with_redis_an_expired_session_cannot_be_resumed_at_another_replica(tmp_path: Path) -> None:
    async with start_redis() as redis:
        storage = {"provider": "redis", "address": f"127.0.0.1:{redis.port}", "keyPrefix": "ttl:", "ttl": TTL}
        path = write_config(tmp_path, [stdio_backend("tools")], sessionStorage=storage)
        async with contextlib.AsyncExitStack() as stack:
            a, b = await replicas(stack, path)
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
            idle = await connect(http, a)
            assert await idle.text("tools_echo", text="x") == "x"
            busy = await connect(http, a)
            assert await busy.text("tools_echo", text="y") == "y"

            await keep_busy(busy, IDLE)

            assert_session_gone(await idle.call("tools_echo", text="at a"))
            at_b = McpClient(http, b.url, session=idle.session)
            assert_session_gone(await at_b.call("tools_echo", text="at b"))  # its record expired in Redis too

            resumed = McpClient(http, b.url, session=busy.session)  # renewed by use: B resumes it
            assert await resumed.text("tools_echo", text="via b") == "via b"
            fresh = await connect(http, b)
            assert await fresh.text("tools_echo", text="new") == "new"
