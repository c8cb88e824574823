"""A minimal stdio MCP server with no SDK: newline-delimited JSON-RPC, one `echo` tool, answered in order.

The stdio benchmark's second backend. The official SDK's server spends about 1 ms of CPU per call, which caps any
gateway in front of it near that rate on this machine; this one costs a few tens of microseconds, so the figure
measured through the gateway is the gateway's own capacity.
"""

from __future__ import annotations

import json
import sys

TOOL = {
    "name": "echo",
    "description": "Return text unchanged.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}


def answer(message: dict[str, object]) -> dict[str, object] | None:
    method, rid = message.get("method"), message.get("id")
    if rid is None or method is None:
        return None  # a notification or a response: nothing to say
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    assert isinstance(params, dict)
    if method == "initialize":
        version = params.get("protocolVersion", "2025-11-25")
        result: object = {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "bench-minimal", "version": "1"},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call" and params.get("name") == "echo":
        text = str((params.get("arguments") or {}).get("text", ""))  # type: ignore[union-attr]
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    else:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"unknown method {method}"}}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def main() -> None:
    out = sys.stdout
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        reply = answer(message) if isinstance(message, dict) else None
        if reply is not None:
            out.write(json.dumps(reply, separators=(",", ":")) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
