"""The official SDK's `MCPServer` with one trivial `echo` tool, over Streamable HTTP on 127.0.0.1:PORT (last
argument). `--json` answers with JSON bodies instead of event streams.

Used as the real backend of `pipeline_bench.py`: what a gateway in front of a real MCP server costs per call.
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench-echo-http")


@server.tool()
def echo(text: str) -> str:
    """Return ``text`` unchanged."""
    return text


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[-1]), json_response="--json" in sys.argv[1:-1])
