"""Start the fixture MCP server over HTTP (Streamable HTTP or legacy SSE) as a real process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from support.gateway import FIXTURE

_EPHEMERAL_FLOOR = 32768  # Linux's default ip_local_port_range starts here: outgoing connections take ports above it
_SPAN = 2000
_next_port = itertools.count()
_held: list[socket.socket] = []


def free_port() -> int:
    """A port nothing listens on now, for a server that must be told its port before it starts (a resource URL names
    it). Taken below the ephemeral range, so no outgoing connection can hold it by chance, from a span of its own per
    xdist worker, so parallel workers never hand out the same one. Prefer port 0 where the server can say which port
    it bound."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = _EPHEMERAL_FLOOR - _SPAN * (1 + (int(worker) if worker.isdigit() else 0) % 8)
    for _ in range(_SPAN):
        port = base + next(_next_port) % _SPAN
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def closed_port() -> int:
    """A port where a connection is refused for as long as the tests run: bound here and never listened on, so no
    other process can take it (unlike a port that was merely free a moment ago)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return int(sock.getsockname()[1])


async def wait_for_port(port: int, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


@asynccontextmanager
async def fixture_http_server(
    mode: str = "--http", *, port: int = 0, env: Mapping[str, str] | None = None
) -> AsyncIterator[str]:
    """The stdio fixture served over HTTP (`--http`, `--http-json`, `--http-resumable` or `--sse`) as a real process;
    yields its MCP URL (`/mcp`, or `/sse` for legacy SSE). Port 0 (the default) lets the server bind a free port
    itself and say which, so two tests can never race for one."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, FIXTURE, mode, str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the fixture server ({mode}) exited with {await proc.wait()} before it answered")
        yield str(json.loads(line)["url"])
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
