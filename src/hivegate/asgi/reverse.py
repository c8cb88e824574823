"""Reverse proxy to a remote Streamable HTTP MCP server (the fast path: no per-session state beyond ownership).

Only an allow-list of request headers goes upstream: the caller's `Authorization` and cookies never do (no token
passthrough). Session ids the backend hands out are bound to the principal that received them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import aiohttp

from hivegate.asgi.http import BodyTooLarge, ClientGone, read_body, send_bytes, send_jsonrpc_error
from hivegate.asgi.types import Receive, Scope, Send
from hivegate.backends.session import BACKEND_UNAVAILABLE
from hivegate.core import jsonrpc
from hivegate.core.principal import Principal

__all__ = ["ReverseProxy"]

logger = logging.getLogger("hivegate.proxy")

_FORWARD_REQUEST = frozenset({b"accept", b"content-type", b"last-event-id"})  # plus every MCP `mcp-*` header
_FORWARD_RESPONSE = frozenset(
    {"content-type", "mcp-session-id", "mcp-protocol-version", "cache-control", "retry-after", "allow", "last-event-id"}
)
_OWNER_LIMIT = 100_000


class ReverseProxy:
    def __init__(
        self, url: str, *, request_timeout: float, max_body: int = 4 * 1024 * 1024, name: str = "remote"
    ) -> None:
        self._url = url
        self._name = name
        self._max_body = max_body
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=request_timeout)
        self._stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30, enable_cleanup_closed=True)
        self._client = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def handle(self, scope: Scope, receive: Receive, send: Send, principal: Principal) -> None:
        method = scope["method"]
        if method not in ("GET", "POST", "DELETE"):
            await send_bytes(send, 405, b"", [(b"allow", b"GET, POST, DELETE")])
            return
        headers: dict[str, str] = {}
        session_id: str | None = None
        for key, value in scope["headers"]:
            if key in _FORWARD_REQUEST or key.startswith(b"mcp-"):
                text = value.decode("latin-1")
                headers[key.decode()] = text
                if key == b"mcp-session-id":
                    session_id = text
        if session_id is not None:
            owner = self._owners.get(session_id)
            if owner is not None and owner != principal.key:
                await send_jsonrpc_error(send, 404, None, -32001, "Session not found")
                return
        body = b""
        request_id: jsonrpc.RequestId | None = None
        if method == "POST":
            try:
                body = await read_body(receive, self._max_body)
            except BodyTooLarge:
                await send_jsonrpc_error(
                    send, 413, None, jsonrpc.INVALID_REQUEST, f"request body exceeds {self._max_body} bytes"
                )
                return
            except ClientGone:
                return
            try:
                message = jsonrpc.decode(body)
            except ValueError:
                await send_jsonrpc_error(send, 400, None, jsonrpc.PARSE_ERROR, "Parse error: body is not valid JSON")
                return
            if isinstance(message, dict):
                rid = message.get("id")
                request_id = rid if isinstance(rid, str | int) else None
        assert self._client is not None
        timeout = self._stream_timeout if method == "GET" else self._timeout
        started = False
        try:
            async with self._client.request(
                method, self._url, data=body or None, headers=headers, timeout=timeout
            ) as resp:
                out = [
                    (k.lower().encode(), v.encode("latin-1"))
                    for k, v in resp.headers.items()
                    if k.lower() in _FORWARD_RESPONSE
                ]
                new_session = resp.headers.get("mcp-session-id")
                if new_session is not None and new_session != session_id and resp.status < 300:
                    self._remember(new_session, principal.key)
                if method == "DELETE" and session_id is not None and resp.status < 300:
                    self._owners.pop(session_id, None)
                if resp.headers.get("content-type", "").startswith("text/event-stream"):
                    await send({"type": "http.response.start", "status": resp.status, "headers": out})
                    started = True
                    async for chunk in resp.content.iter_any():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                payload = await resp.read()
                await send_bytes(send, resp.status, payload, out)
        except (TimeoutError, aiohttp.ClientError) as exc:
            if started:  # the stream broke half-way: end it, the client sees the stream close
                logger.warning("backend %r stream ended early: %s", self._name, exc.__class__.__name__)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if isinstance(exc, aiohttp.ClientError):
                logger.warning("backend %r unreachable: %s", self._name, exc.__class__.__name__)
                await send_jsonrpc_error(
                    send, 502, request_id, BACKEND_UNAVAILABLE, f"backend {self._name!r} is unreachable"
                )
                return
            await send_jsonrpc_error(send, 504, request_id, BACKEND_UNAVAILABLE, f"backend {self._name!r} timed out")

    def _remember(self, session_id: str, owner: str) -> None:
        self._owners[session_id] = owner
        if len(self._owners) > _OWNER_LIMIT:
            self._owners.popitem(last=False)
