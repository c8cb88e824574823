"""Many cheap MCP servers over Streamable HTTP in one process: the backends of the cost curves (`curves.py`).

A raw ASGI app under uvicorn (uvloop + httptools), like `fast_backend.py`. Each `--endpoint NAME=TOOLS` is an MCP
endpoint at `/NAME/mcp` whose `tools/list` answers `echo` plus TOOLS-1 more tools (`tool_0` ..., the tools of
`stdio_minimal_server.py`); `tools/call` of `echo` returns its `text` argument. Every `initialize` gets a new
`Mcp-Session-Id` (`GET /stats` says how many were opened). `--delay-ms D` makes `initialize` and `tools/list`
answer after D ms (an `asyncio.sleep`: the endpoints still answer in parallel), to show whether a client asks its
backends one after another.

One process for all endpoints keeps 50 backends cheap (a process each would be ~50 x 25 MB); the gateway cannot
tell the difference: each endpoint is a separate URL with its own sessions.

    python benchmarks/multi_backend.py --port 8001 --endpoint b0=10 --endpoint b1=10   # /b0/mcp, /b1/mcp
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

from fast_backend import _read_body, _respond
from stdio_minimal_server import TOOL, extra_tool

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
JSON_HEADERS: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]


def tools_result(count: int) -> bytes:
    """The `result` of `tools/list` with `count` tools in all (`echo` first), serialized once."""
    return orjson.dumps({"tools": [TOOL, *(extra_tool(i) for i in range(max(0, count - 1)))]})


def parse_endpoints(specs: list[str]) -> dict[str, int]:
    """`NAME=TOOLS` options -> {path: tools}; a bad one raises ValueError naming it."""
    out: dict[str, int] = {}
    for spec in specs:
        name, _, count = spec.partition("=")
        if not name or not count.isdigit() or int(count) < 1:
            raise ValueError(f"--endpoint: expected NAME=TOOLS (TOOLS >= 1), got {spec!r}")
        out[f"/{name}/mcp"] = int(count)
    return out


def make_app(endpoints: dict[str, int], delay: float) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    lists = {path: tools_result(count) for path, count in endpoints.items()}
    sessions = itertools.count(1)
    opened = [0]  # sessions opened (initialize answered), for GET /stats

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # no lifespan: uvicorn runs with lifespan="off"
            return
        listed = lists.get(scope["path"])
        if scope["path"] == "/stats":
            await _respond(send, 200, orjson.dumps({"sessions": opened[0]}), JSON_HEADERS)
            return
        if listed is None:
            await _respond(send, 404)
            return
        if scope["method"] == "DELETE":
            await _respond(send, 200)
            return
        if scope["method"] != "POST":
            await _respond(send, 405, headers=[(b"allow", b"POST, DELETE")])
            return
        message = orjson.loads(await _read_body(receive))
        if not isinstance(message, dict) or "id" not in message:
            await _respond(send, 202)
            return
        method, rid = message.get("method"), orjson.dumps(message["id"])
        headers = JSON_HEADERS
        if method in ("initialize", "tools/list") and delay > 0:
            await asyncio.sleep(delay)
        if method == "initialize":
            version = (message.get("params") or {}).get("protocolVersion", "2025-11-25")
            info = {"name": scope["path"], "version": "1"}
            result = orjson.dumps({"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": info})
            opened[0] = next(sessions)
            headers = [*JSON_HEADERS, (b"mcp-session-id", f"s{opened[0]}".encode())]
        elif method == "tools/list":
            result = listed
        elif method == "tools/call":
            text = str(((message.get("params") or {}).get("arguments") or {}).get("text", ""))
            result = orjson.dumps({"content": [{"type": "text", "text": text}], "isError": False})
        else:
            result = b"{}"
        body = b'{"jsonrpc":"2.0","id":' + rid + b',"result":' + result + b"}"
        await _respond(send, 200, body, headers)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint", action="append", default=[], metavar="NAME=TOOLS", help="serve /NAME/mcp")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="initialize and tools/list take this long")
    args = parser.parse_args()
    try:
        endpoints = parse_endpoints(args.endpoint or ["mcp=1"])
    except ValueError as exc:
        parser.error(str(exc))
    app = make_app(endpoints, args.delay_ms / 1000)
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", lifespan="off",
                access_log=False, log_level="warning")  # fmt: skip


if __name__ == "__main__":
    main()
