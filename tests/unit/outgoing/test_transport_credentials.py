"""A Streamable HTTP backend seen through `StreamableClientTransport` with a credential: what it receives, the
caller's credential per message, and a refusal (401) named for what it is."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from hivegate.backends.remote import StreamableClientTransport
from hivegate.core.principal import Principal
from hivegate.errors import BackendError
from hivegate.outgoing import Caller
from support.webserver import serve_on_loopback

pytestmark = pytest.mark.anyio


class PerCaller:
    """A credential that names the caller (so a test can see which caller's credential went out)."""

    needs_caller = True

    async def headers(self, caller: Caller | None) -> dict[str, str]:
        who = caller.principal.subject if caller is not None else "nobody"
        return {"Authorization": f"Bearer for-{who}"}


async def test_each_message_carries_the_credential_of_the_caller_it_is_for() -> None:
    seen: list[str | None] = []

    async def mcp(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        body = await request.json()
        if "id" not in body:
            return web.Response(status=202)
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": {}})

    app = web.Application()
    app.router.add_post("/mcp", mcp)
    async with serve_on_loopback(app) as base:
        transport = StreamableClientTransport(f"{base}/mcp", timeout=5, credentials=PerCaller(), name="b")
        got: list[Any] = []
        await transport.open(got.append)
        alice = Caller(Principal("alice", "iss", "jwt"), "alice-token")
        await transport.send({"jsonrpc": "2.0", "id": 1, "method": "ping"}, alice)
        await transport.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})
        await transport.close()
    # the gateway's own message (no caller) reuses the session's last credential, never the caller's token
    assert seen == ["Bearer for-alice", "Bearer for-alice"]


async def test_a_backend_refusing_the_credential_is_named() -> None:
    async def mcp(request: web.Request) -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    app = web.Application()
    app.router.add_post("/mcp", mcp)
    async with serve_on_loopback(app) as base:
        transport = StreamableClientTransport(f"{base}/mcp", timeout=5, credentials=PerCaller(), name="github")
        await transport.open(lambda _: None)
        with pytest.raises(BackendError, match=r"backend 'github' refused the gateway's credential \(HTTP 401\)"):
            await transport.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        await transport.close()
