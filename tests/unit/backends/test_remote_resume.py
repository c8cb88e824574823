"""A Streamable HTTP backend that closes an answer's SSE stream before answering (SEP-1699 polling): the
transport resumes it with `GET` + `Last-Event-ID` after the server's `retry` time, and a stream it cannot resume
gets the request an error answer at once instead of a wait for an answer that never comes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _app(post: Handler, get: Handler | None = None) -> web.Application:
    app = web.Application()
    app.router.add_post("/mcp", post)
    if get is not None:
        app.router.add_get("/mcp", get)
    return app


async def _answers(app: web.Application, headers: dict[str, str] | None = None) -> list[Message]:
    """Everything the transport delivers for CALL, up to and including its answer."""
    received: list[Message] = []
    answered = asyncio.Event()

    def on_message(message: Message) -> None:
        received.append(message)
        if message.get("id") == CALL["id"]:
            answered.set()

    async with serve_on_loopback(app) as base:
        transport = StreamableClientTransport(f"{base}/mcp", timeout=5, name="b", headers=headers)
        await transport.open(on_message)
        await transport.send(CALL)
        await asyncio.wait_for(answered.wait(), 10)
        await transport.close()
    return received


async def test_a_closed_stream_is_resumed_from_its_last_event_id(caplog: pytest.LogCaptureFixture) -> None:
    resumed_from: list[tuple[str | None, str | None]] = []

    async def post(request: web.Request) -> web.StreamResponse:
        return await _sse(request, b"id: e1\nretry: 20\ndata: \n\n")  # a priming event, then the stream ends

    async def get(request: web.Request) -> web.StreamResponse:
        resumed_from.append((request.headers.get("Last-Event-ID"), request.headers.get("X-Api-Key")))
        return await _sse(request, b"id: e2\ndata: " + RESULT + b"\n\n")

    with caplog.at_level(logging.WARNING, logger="hivegate.backend.remote"):
        answers = await _answers(_app(post, get), {"X-Api-Key": "backend-key"})
    assert answers == [{"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "done"}]}}]
    assert resumed_from == [("e1", "backend-key")]  # the request's own headers, its credential with them
    assert caplog.messages == []  # the priming event is not "an event that is not JSON"


async def test_a_stream_without_an_event_id_gets_the_request_an_error_at_once() -> None:
    async def post(request: web.Request) -> web.StreamResponse:
        return await _sse(request, b'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n')

    answers = await _answers(_app(post))
    assert answers[0]["method"] == "notifications/progress"
    assert answers[1]["id"] == 7
    assert answers[1]["error"]["message"] == (
        "backend 'b' closed the stream before answering, and it could not be resumed"
    )


async def test_a_server_that_refuses_to_resume_gets_the_request_an_error() -> None:
    async def post(request: web.Request) -> web.StreamResponse:
        return await _sse(request, b"id: e1\nretry: 0\ndata: \n\n")

    async def get(request: web.Request) -> web.StreamResponse:
        return web.Response(status=405)

    answers = await _answers(_app(post, get))
    assert [a["id"] for a in answers] == [7]
    assert answers[0]["error"]["code"] == -32603


async def test_a_server_that_closes_the_stream_after_each_progress_report_is_followed_to_its_answer() -> None:
    gets = 0

    async def post(request: web.Request) -> web.StreamResponse:
        return await _sse(request, b"id: p0\nretry: 0\ndata: \n\n")

    async def get(request: web.Request) -> web.StreamResponse:
        nonlocal gets
        gets += 1
        if gets == 30:  # more reconnections than MAX_RESUMES, each of them bringing news
            return await _sse(request, b"id: last\ndata: " + RESULT + b"\n\n")
        progress = b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":%d}}'
        return await _sse(request, b"id: p%d\ndata: " % gets + progress % gets + b"\n\n")

    received = await _answers(_app(post, get))
    assert received[-1] == {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "done"}]}}
    assert len(received) == 30  # 29 progress reports, then the answer


async def test_a_session_the_server_forgot_while_resuming_is_over() -> None:
    async def post(request: web.Request) -> web.StreamResponse:
        return await _sse(request, b"id: e1\nretry: 0\ndata: \n\n")

    async def get(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404)

    received: list[Message] = []
    async with serve_on_loopback(_app(post, get)) as base:
        transport = StreamableClientTransport(f"{base}/mcp", timeout=5, name="b")
        await transport.open(received.append)
        await transport.send(CALL)
        reason = await asyncio.wait_for(transport.wait_closed(), 10)
        await transport.close()
    assert reason == "backend 'b' no longer knows the session (HTTP 404)"
    assert [a["id"] for a in received] == [7]  # the request is answered too: it will not be
