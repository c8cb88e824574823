"""A small stdio MCP server bundled for `hivegate demo` and the README: a few tools, a prompt and a resource."""

from __future__ import annotations

import datetime

from mcp.server.mcpserver import MCPServer

server = MCPServer("hivegate-demo")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def utc_now() -> str:
    """The current time in UTC, ISO 8601."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@server.prompt()
def greet(name: str) -> str:
    """A greeting prompt."""
    return f"Say hello to {name}."


@server.resource("demo://readme")
def readme() -> str:
    """What this server is."""
    return "The hivegate demo MCP server: tools echo, add and utc_now."


def main() -> None:
    server.run("stdio")


if __name__ == "__main__":
    main()
