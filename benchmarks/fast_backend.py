"""A trivial, fast JSON-RPC-over-HTTP backend for the proxy benchmark.

A raw ASGI app (no framework) served by uvicorn with uvloop + httptools. Any ``POST /mcp``
carrying a JSON-RPC request is answered at once with a small result as ``application/json``;
notifications get ``202 Accepted``. ``initialize`` gets a plausible result and an
``Mcp-Session-Id`` so that a proxy which insists on a session handshake still works.

Run: ``python benchmarks/fast_backend.py --port 8001`` (serves ``http://127.0.0.1:8001/mcp``).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PROTOCOL_VERSION = "2025-11-25"
SESSION_ID = b"bench-fast-backend-session"
Headers = list[tuple[bytes, bytes]]
JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
TOOL_RESULT: dict[str, Any] = {"content": [{"type": "text", "text": "ok"}], "isError": False}
INITIALIZE_RESULT: dict[str, Any] = {
    "protocolVersion": PROTOCOL_VERSION,
    "capabilities": {"tools": {"listChanged": False}},
    "serverInfo": {"name": "bench-fast-backend", "version": "1.0"},
}
TOOLS_LIST_RESULT: dict[str, Any] = {
    "tools": [{"name": "echo", "description": "echo", "inputSchema": {"type": "object", "properties": {}}}]
}


def result_for(method: object) -> dict[str, Any]:
    """Return the (small, constant) result for a JSON-RPC method."""
    if method == "initialize":
        return INITIALIZE_RESULT
    if method == "tools/list":
        return TOOLS_LIST_RESULT
    return TOOL_RESULT


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes = b"", headers: Headers | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] != "/mcp":
        await _respond(send, 404)
        return
    method = scope["method"]
    if method == "DELETE":
        await _respond(send, 200)
        return
    if method != "POST":
        await _respond(send, 405, headers=[(b"allow", b"POST, DELETE")])
        return
    try:
        message = orjson.loads(await _read_body(receive))
    except orjson.JSONDecodeError:
        error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
        await _respond(send, 400, orjson.dumps(error), JSON_HEADERS)
        return
    if not isinstance(message, dict) or "id" not in message:
        await _respond(send, 202)  # notification or response: nothing to answer
        return
    rpc_method = message.get("method")
    body = orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result_for(rpc_method)})
    headers = JSON_HEADERS if rpc_method != "initialize" else [*JSON_HEADERS, (b"mcp-session-id", SESSION_ID)]
    await _respond(send, 200, body, headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
