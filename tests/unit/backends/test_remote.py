"""The remote transports when a send races the transport closing: the message never went out, so the send raises
`SessionGone` (a new session may take it) rather than a plain `BackendError` or the HTTP client's `RuntimeError`;
and the Streamable HTTP transport sending each message with the credential of the caller passed to `send`."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from hivegate.backends.remote import SseClientTransport, StreamableClientTransport
from hivegate.core.jsonrpc import Message
from hivegate.core.principal import Principal
from hivegate.errors import SessionGone
from hivegate.outgoing import Caller
from support.webserver import serve_on_loopback

pytestmark = pytest.mark.anyio

PING: Message = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


class HeldCredential:
    """A credential whose look-up waits for `release`: the transport can close while a send waits for it."""

    needs_caller = False

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def headers(self, caller: Caller | None) -> dict[str, str]:
        self.asked.set()
        await self.release.wait()
        return {}


async def test_a_streamable_send_the_transport_closes_under_is_session_gone() -> None:
    credential = HeldCredential()
    transport = StreamableClientTransport("http://127.0.0.1:9/mcp", timeout=5, credentials=credential, name="b")
    await transport.open(lambda _: None)
    sending = asyncio.create_task(transport.send(PING))
    await credential.asked.wait()
    await transport.close()  # the HTTP client is closed before the POST starts: it raises RuntimeError
    credential.release.set()
    with pytest.raises(SessionGone, match=r"backend 'b' session closed while sending"):
        await sending


async def test_a_streamable_send_after_the_backend_forgot_the_session_is_session_gone() -> None:
    async def mcp(request: web.Request) -> web.Response:
        if "mcp-session-id" in request.headers:
            return web.Response(status=404)
        return web.json_response({"jsonrpc": "2.0", "id": 1, "result": {}}, headers={"Mcp-Session-Id": "s1"})

    app = web.Application()
    app.router.add_post("/mcp", mcp)
    async with serve_on_loopback(app) as base:
        transport = StreamableClientTransport(f"{base}/mcp", timeout=5, name="b")
        await transport.open(lambda _: None)
        await transport.send(PING)
        with pytest.raises(SessionGone, match=r"HTTP 404"):
            await transport.send(PING)
        with pytest.raises(SessionGone):  # another send that raced the 404: not sent either
            await transport.send(PING)
        await transport.close()


async def test_an_sse_send_after_the_stream_ended_is_session_gone() -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: endpoint\ndata: /messages\n\n")
        return response  # the stream ends: the backend went away

    app = web.Application()
    app.router.add_get("/sse", stream)
    async with serve_on_loopback(app) as base:
        transport = SseClientTransport(f"{base}/sse", timeout=5)
        await transport.open(lambda _: None)
        async with asyncio.timeout(5):
            await transport.wait_closed()
        with pytest.raises(SessionGone, match=r"SSE backend is not connected"):
            await transport.send(PING)
        await transport.close()


class NamingCredential:
    """A credential that names the caller it was made for (so a test sees whose credential went out)."""

    needs_caller = True

    def __init__(self) -> None:
        self.asked_for: list[Caller | None] = []

    async def headers(self, caller: Caller | None) -> dict[str, str]:
        self.asked_for.append(caller)
        who = caller.principal.subject if caller is not None else "nobody"
        return {"Authorization": f"Bearer for-{who}"}


async def test_a_streamable_send_carries_the_credential_of_the_caller_passed_to_it() -> None:
    seen: list[tuple[str | None, str | None]] = []  # (method, Authorization) of each POST the backend received

    async def mcp(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((body.get("method"), request.headers.get("Authorization")))
        if "id" not in body:
            return web.Response(status=202)
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": {}})

    alice = Caller(Principal("alice", "https://idp", "jwt"), "alice-token")
    bob = Caller(Principal("bob", "https://idp", "jwt"), "bob-token")
    credential = NamingCredential()
    app = web.Application()
    app.router.add_post("/mcp", mcp)
    async with serve_on_loopback(app) as base:
        transport = StreamableClientTransport(f"{base}/mcp", timeout=5, credentials=credential, name="b")
        await transport.open(lambda _: None)
        await transport.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, alice)
        await transport.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call"}, bob)
        # a message of the gateway's own (no caller) goes with the last credential sent, the credential is not asked
        await transport.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}})
        await transport.close()
    assert seen == [
        ("tools/list", "Bearer for-alice"),
        ("tools/call", "Bearer for-bob"),
        ("notifications/cancelled", "Bearer for-bob"),
    ]
    assert credential.asked_for == [alice, bob]
