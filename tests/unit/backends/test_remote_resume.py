"""A Streamable HTTP backend that closes an answer's SSE stream before answering (SEP-1699 polling): the
transport resumes it with `GET` + `Last-Event-ID` after the server's `retry` time, and a stream it cannot resume
gets the request an error answer at once instead of a wait for an answer that never comes."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from hivegate.backends.remote import StreamableClientTransport
from hivegate.core.jsonrpc import Message
from support.webserver import serve_on_loopback

pytestmark = pytest.mark.anyio

CALL: Message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "slow", "arguments": {}}}
RESULT = b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"done"}]}}'


async def _sse(request: web.Request, *blocks: bytes) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Mcp-Session-Id": "s1"})
    await response.prepare(request)
    for block in blocks:
        await response.write(block)
    await response.write_eof()
    return response


async def _answers(app: web.Application) -> list[Message]:
    received: list[Message] = []
    got = asyncio.Event()

    def on_message(message: Message) -> None:
        received.append(message)
        got.set()

    async with serve_on_loopback(app) as base:
        transport = StreamableClientTransport(f"{base}/mcp", timeout=5, name="b")
        await transport.open(on_message)
        await transport.send(CALL)
        await asyncio.wait_for(got.wait(), 10)
        await transport.close()
    return received


async def test_a_closed_stream_is_resumed_from_its_last_event_id(caplog: pytest.LogCaptureFixture) -> None:
    resumed_from: list[str | None] = []

    async def post(request: web.Request) -> web.StreamResponse:
        return await _sse(request, b"id: e1\nretry: 20\ndata: \n\n")  # a priming event, then the stream ends

    async def get(request: web.Request) -> web.StreamResponse:
        resumed_from.append(request.headers.get("Last-Event-ID"))
        return await _sse(request, b"id: e2\ndata: " + RESULT + b"\n\n")

    app = web.Application()
    app.router.add_post("/mcp", post)
    app.router.add_get("/mcp", get)
    with caplog.at_level(logging.WARNING, logger="hivegate.backend.remote"):
        answers = await _answers(app)
    assert answers == [{"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "done"}]}}]
    assert resumed_from == ["e1"]
    assert caplog.messages == []  # the priming event is not "an event that is not JSON"


async def test_a_stream_without_an_event_id_gets_the_request_an_error_at_once() -> None:
    async def post(request: web.Request) -> web.StreamResponse:
        return await _sse(request, b'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n')

    app = web.Application()
    app.router.add_post("/mcp", post)
    answers = await _answers(app)
    assert answers[0]["method"] == "notifications/progress"
    assert answers[1]["id"] == 7
    assert answers[1]["error"]["message"] == (
        "backend 'b' closed the stream before answering, and it could not be resumed"
    )


async def test_a_server_that_refuses_to_resume_gets_the_request_an_error() -> None:
    async def post(request: web.Request) -> web.StreamResponse:
        return await _sse(request, b"id: e1\nretry: 0\ndata: \n\n")

    async def get(request: web.Request) -> web.Response:
        return web.Response(status=405)

    app = web.Application()
    app.router.add_post("/mcp", post)
    app.router.add_get("/mcp", get)
    answers = await _answers(app)
    assert [a["id"] for a in answers] == [7]
    assert answers[0]["error"]["code"] == -32603
