"""A minimal stdio MCP server with no SDK: newline-delimited JSON-RPC, one `echo` tool, answered in order.

The stdio benchmark's second backend. The official SDK's server spends about 1 ms of CPU per call, which caps any
gateway in front of it near that rate on this machine; this one costs a few tens of microseconds, so the figure
measured through the gateway is the gateway's own capacity.

`--tools N` (or env `BENCH_EXTRA_TOOLS=N`) adds N more tools to the `tools/list` answer, `tool_0` .. `tool_<N-1>`
(every fourth one marked read-only), for the list-filtering benchmark; only `echo` can be called.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

TOOL: dict[str, object] = {
    "name": "echo",
    "description": "Return text unchanged.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}


def extra_tool(index: int) -> dict[str, object]:
    return {
        "name": f"tool_{index}",
        "description": f"Benchmark tool number {index}: does nothing.",
        "inputSchema": {"type": "object", "properties": {"operation": {"type": "string"}, "a": {"type": "number"}}},
        "annotations": {"readOnlyHint": index % 4 == 0},
    }


TOOLS: list[dict[str, object]] = [TOOL]


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
        result = {"tools": TOOLS}
    elif method == "tools/call" and params.get("name") == "echo":
        text = str((params.get("arguments") or {}).get("text", ""))
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    else:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"unknown method {method}"}}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def main() -> None:
    parser = argparse.ArgumentParser(description="A minimal stdio MCP server (no SDK) for the benchmarks.")
    default = int(os.environ.get("BENCH_EXTRA_TOOLS", "0"))
    parser.add_argument("--tools", type=int, default=default, metavar="N", help="list N extra tools (default 0)")
    TOOLS.extend(extra_tool(i) for i in range(parser.parse_args().tools))
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
