"""A minimal stdio MCP server with one trivial ``echo`` tool, built on the official SDK.

Used as the backend of the stdio benchmark: ``hivegate run -- python benchmarks/stdio_echo_server.py``.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench-echo")


@server.tool()
def echo(text: str) -> str:
    """Return ``text`` unchanged."""
    return text


if __name__ == "__main__":
    server.run("stdio")
