"""`HTTP1Pool` against a real HTTP/1.1 server on 127.0.0.1 that answers from a script per request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hivegate.httpclient.pool import HTTP1Pool, HTTPClientError, HTTPTimeout

pytestmark = pytest.mark.anyio

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # the request head -> keep the connection?


class Origin:
    """Counts connections and requests; `handler` writes each answer."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.startswith(b"content-length")]
                length = int(lengths[0]) if lengths else 0
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                if not await self.handler(head, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _ok(head: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello")
    await writer.drain()
    return True


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[Origin, str]]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> tuple[Origin, str]:
        origin = Origin(handler)
        server = await asyncio.start_server(origin.serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return origin, f"http://127.0.0.1:{port}/mcp"

    yield start
    for server in servers:
        server.close()


async def test_requests_reuse_one_kept_alive_connection(serve) -> None:  # type: ignore[no-untyped-def]
    origin, url = await serve(_ok)
    pool = HTTP1Pool(url)
    for _ in range(3):
        response = await pool.request("POST", [(b"content-type", b"application/json")], b"{}", timeout=5)
        assert (response.status, await response.read()) == (200, b"hello")
    assert origin.connections == 1
    assert origin.requests[0].startswith(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:")
    assert origin.requests[0].endswith(b"content-length: 2\r\n\r\n{}")
    await pool.aclose()


async def test_a_body_that_ends_with_the_connection_is_complete(serve) -> None:  # type: ignore[no-untyped-def]
    async def close_delimited(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()
        return False

    _, url = await serve(close_delimited)
    pool = HTTP1Pool(url)
    response = await pool.request("GET", [], b"", timeout=5)
    assert await response.read() == b"all of it"
    await pool.aclose()


async def test_a_stream_arrives_chunk_by_chunk_and_an_idle_one_times_out(serve) -> None:  # type: ignore[no-untyped-def]
    proceed = asyncio.Event()

    async def stream(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        writer.write(b"6\r\nfirst\n\r\n")
        await writer.drain()
        await proceed.wait()
        writer.write(b"7\r\nsecond\n\r\n")
        await writer.drain()
        await asyncio.Event().wait()  # then nothing more
        return False

    _, url = await serve(stream)
    pool = HTTP1Pool(url)
    response = await pool.request("GET", [], b"", timeout=5)
    assert response.header(b"content-type") == b"text/event-stream"
    chunks = response.iter_chunks(idle=0.2)
    assert await anext(chunks) == b"first\n"
    proceed.set()
    assert await anext(chunks) == b"second\n"
    with pytest.raises(HTTPTimeout):
        await anext(chunks)
    await pool.aclose()


async def test_no_answer_in_time_is_a_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    async def silent(head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.Event().wait()
        return False

    _, url = await serve(silent)
    pool = HTTP1Pool(url)
    with pytest.raises(HTTPTimeout):
        await pool.request("POST", [], b"{}", timeout=0.2)
    await pool.aclose()


async def test_a_malformed_answer_is_an_error(serve) -> None:  # type: ignore[no-untyped-def]
    async def garbage(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        return True

    _, url = await serve(garbage)
    pool = HTTP1Pool(url)
    with pytest.raises(HTTPClientError, match="malformed response"):
        await pool.request("GET", [], b"", timeout=5)
    await pool.aclose()


async def test_a_kept_connection_the_server_closed_is_retried_for_get_never_for_post(serve) -> None:  # type: ignore[no-untyped-def]
    origin, url = await serve(_ok)
    pool = HTTP1Pool(url)
    await (await pool.request("GET", [], b"", timeout=5)).read()
    for writer in origin.writers:  # the server drops its kept-alive connection
        writer.transport.abort()
    await asyncio.sleep(0.05)
    response = await pool.request("GET", [], b"", timeout=5)
    assert await response.read() == b"hello"
    assert origin.connections == 2

    await (await pool.request("GET", [], b"", timeout=5)).read()
    posted = len(origin.requests)
    origin.writers[-1].transport.abort()
    await asyncio.sleep(0.05)
    try:
        response = await pool.request("POST", [], b"{}", timeout=5)
    except HTTPClientError:
        assert len(origin.requests) == posted  # refused, not sent twice
    else:  # the pool saw the close before reusing: a fresh connection, sent once
        assert await response.read() == b"hello"
        assert len(origin.requests) == posted + 1
    await pool.aclose()


async def test_the_connection_cap_is_enforced(serve) -> None:  # type: ignore[no-untyped-def]
    release = asyncio.Event()

    async def slow(head: bytes, writer: asyncio.StreamWriter) -> bool:
        await release.wait()
        return await _ok(head, writer)

    origin, url = await serve(slow)
    pool = HTTP1Pool(url, max_connections=1)
    first = asyncio.ensure_future(pool.request("POST", [], b"{}", timeout=5))
    while not origin.requests:  # the first request holds the only connection
        await asyncio.sleep(0.01)
    with pytest.raises(HTTPClientError, match="too many connections"):
        await pool.request("POST", [], b"{}", timeout=5)
    release.set()
    assert (await first).status == 200
    await pool.aclose()


async def test_an_unreachable_backend_is_an_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = HTTP1Pool(f"http://127.0.0.1:{port}/mcp")
    with pytest.raises(HTTPClientError, match="cannot connect"):
        await pool.request("GET", [], b"", timeout=5)
    await pool.aclose()
