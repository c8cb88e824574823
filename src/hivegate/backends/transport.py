"""The transport port: one duplex stream of JSON-RPC messages to a backend MCP server.

A transport is opened once and lives until the process exits or the connection drops; `BackendSession` opens a
new one to restart. Implementations: `StdioTransport` (a child process), `SseClientTransport` (legacy HTTP+SSE
server), `StreamableClientTransport` (Streamable HTTP server).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hivegate.core.jsonrpc import Message
from hivegate.outgoing.caller import Caller

__all__ = ["MessageHandler", "Transport", "TransportFactory"]

MessageHandler = Callable[[Message], None]


class Transport(Protocol):
    async def open(self, on_message: MessageHandler) -> None:
        """Connect (or spawn); `on_message` is called for every message the backend sends."""

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        """Send one message; raises `BackendError` when the backend is gone.

        `caller` is who the message is for: a transport whose backend credential depends on the caller sends that
        caller's. None: a message of the gateway's own (a cancellation, a request of its own).
        """

    async def wait_closed(self) -> str:
        """Return, with a short human-readable reason, once the backend has gone away."""

    async def close(self) -> None:
        """Stop the backend (terminate the process, close the connection). Idempotent."""


TransportFactory = Callable[[], Transport]
