"""Start the fixture MCP server over HTTP (Streamable HTTP or legacy SSE) as a real process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from support.gateway import FIXTURE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
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
async def fixture_http_server(mode: str = "--http") -> AsyncIterator[str]:
    """Yields the server's MCP URL (`/mcp` for Streamable HTTP, `/sse` for legacy SSE)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, FIXTURE, mode, str(port), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await wait_for_port(port)
        yield f"http://127.0.0.1:{port}/{'sse' if mode == '--sse' else 'mcp'}"
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
