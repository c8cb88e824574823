"""Finding 10 of the security review, against a real gateway: slow clients cannot hold connections, one address
cannot take every connection, the open files limit is raised, and a stdio server flooding stderr cannot flood the
gateway's log. The connection layer is the same for every front (`asgi.connections`, used by `run` and
`vmcp serve` alike), so one front shows it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from support.fronts import Front, open_session, start_front
from support.issuer import local_issuer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

POLICIES = ['permit(principal, action == Action::"call_tool", resource == Tool::"stderr_flood");']
FLAGS = ["--read-header-timeout", "1s", "--read-body-timeout", "1s", "--max-connections-per-address", "20"]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Front]:
    async with local_issuer() as issuer, start_front("stdio", tmp_path, issuer, POLICIES, extra=FLAGS) as front:
        yield front
        assert "Traceback" not in front.stderr()


def address_of(front: Front) -> tuple[str, int]:
    host, port = front.gateway.base.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def connect(front: Front, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = address_of(front)
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sent until it closed the connection (fails if it stays open longer than `within`)."""
    with anyio.fail_after(within):
        return await reader.read()


async def test_a_client_dribbling_its_request_head_is_closed_with_408(gateway: Front) -> None:
    reader, writer = await connect(gateway)
    writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    async def dribble() -> None:
        for _ in range(50):
            writer.write(b"X")
            await asyncio.sleep(0.2)

    task = asyncio.ensure_future(dribble())
    try:
        answer = await closed_by_server(reader, within=10)
    finally:
        task.cancel()
    assert answer.startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_a_client_pausing_inside_its_body_is_closed(gateway: Front) -> None:
    reader, writer = await connect(gateway)
    writer.write(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"
    )
    answer = await closed_by_server(reader, within=10)
    assert b" 200 " not in answer
    writer.close()


async def test_one_address_cannot_take_the_connections_another_needs(gateway: Front) -> None:
    held = [await connect(gateway) for _ in range(20)]
    refused_reader, refused_writer = await connect(gateway)
    assert (await closed_by_server(refused_reader, within=10)).startswith(b"HTTP/1.1 503 ")
    refused_writer.close()
    # another client, from another address, is served meanwhile
    reader, writer = await connect(gateway, source="127.0.0.2")
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nconnection: close\r\n\r\n")
    assert (await closed_by_server(reader, within=10)).startswith(b"HTTP/1.1 200 ")
    writer.close()
    for _, w in held:
        w.close()


async def test_the_open_files_limit_is_raised_to_the_hard_limit(gateway: Front) -> None:
    limits = Path(f"/proc/{gateway.gateway.process.pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\S+)\s+(\S+)", limits).groups()  # type: ignore[union-attr]
    assert soft == hard


async def test_a_stdio_server_flooding_stderr_cannot_flood_the_gateways_log(gateway: Front) -> None:
    async with httpx.AsyncClient(timeout=60) as http, open_session(gateway, http, gateway.token()) as session:
        start = len(gateway.gateway.stderr)
        flood = session.rpc("tools/call", {"name": "stderr_flood", "arguments": {"lines": 20_000}})
        answer = await session.request(flood)
        assert answer.message["result"]["content"][0]["text"] == "wrote 20000"

        def logged() -> list[str]:
            return [line for line in gateway.gateway.stderr[start:] if "flood line" in line]

        def accounted() -> int:
            counts = (re.search(r"\((\d+) more dropped\)", line) for line in logged())
            return len(logged()) + sum(int(m.group(1)) for m in counts if m)

        # the lines left out are counted on a later line: one more short burst brings that line
        with anyio.fail_after(20):
            while accounted() < 20_000:
                await session.request(session.rpc("tools/call", {"name": "stderr_flood", "arguments": {"lines": 1}}))
                await asyncio.sleep(0.1)
        assert len(logged()) < 1_000
