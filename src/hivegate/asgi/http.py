"""Small raw-ASGI helpers: headers, bounded body reading, JSON and SSE responses."""

from __future__ import annotations

from typing import Any

import orjson

from hivegate.asgi.types import Receive, Scope, Send
from hivegate.core import jsonrpc
from hivegate.errors import HivegateError, InvalidMessage
from hivegate.pipeline.messages import Inbound, parse_body

__all__ = [
    "BodyTooLarge",
    "ClientGone",
    "SSEStream",
    "get_header",
    "read_body",
    "read_inbound",
    "send_bytes",
    "send_json",
    "send_jsonrpc_error",
]

JSON_HEADERS = [(b"content-type", b"application/json")]


class BodyTooLarge(HivegateError):
    """The request body is larger than the limit (answered 413)."""


class ClientGone(HivegateError):
    """The HTTP client disconnected."""


def get_header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_inbound(receive: Receive, send: Send, limit: int, revision: str) -> Inbound | None:
    """Read a POST body (at most `limit` bytes) and parse it as sent under MCP `revision` (the pipeline's
    parse-and-validate stage). On failure
    the error is already answered (413, or 400 with the JSON-RPC error) and None comes back; a client that left
    gets no answer."""
    try:
        body = await read_body(receive, limit)
    except BodyTooLarge:
        await send_jsonrpc_error(send, 413, None, jsonrpc.INVALID_REQUEST, f"request body exceeds {limit} bytes")
        return None
    except ClientGone:
        return None
    try:
        return parse_body(body, revision=revision)
    except InvalidMessage as exc:
        await send_json(send, exc.status, exc.answer())
        return None


async def send_bytes(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    all_headers = [(b"content-length", str(len(body)).encode()), *(headers or ())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send_bytes(send, status, orjson.dumps(payload), [*JSON_HEADERS, *(headers or ())])


async def send_jsonrpc_error(
    send: Send,
    status: int,
    request_id: jsonrpc.RequestId | None,
    code: int,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send_json(send, status, jsonrpc.error_response(request_id, code, message), headers)


class SSEStream:
    """A `text/event-stream` response (the WHATWG server-sent events format)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def start(self, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        base = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache, no-transform"),
            (b"x-accel-buffering", b"no"),
        ]
        await self._guarded({"type": "http.response.start", "status": 200, "headers": [*base, *(headers or ())]})
        self.started = True

    async def event(self, data: bytes, event: str = "message", event_id: str | None = None) -> None:
        head = f"event: {event}\n".encode()
        if event_id is not None:
            head += f"id: {event_id}\n".encode()
        await self._guarded(
            {"type": "http.response.body", "body": head + b"data: " + data + b"\n\n", "more_body": True}
        )

    async def comment(self, text: str = "ping") -> None:
        await self._guarded({"type": "http.response.body", "body": f": {text}\n\n".encode(), "more_body": True})

    async def end(self) -> None:
        await self._guarded({"type": "http.response.body", "body": b"", "more_body": False})

    async def _guarded(self, message: dict[str, Any]) -> None:
        try:
            await self._send(message)
        except OSError as exc:
            raise ClientGone from exc
