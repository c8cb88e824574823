"""Pipeline stage "parse and validate", for headers: the MCP headers that name state may appear once, and the
protocol revision a request names must be one the gateway serves.

A request with two `Mcp-Session-Id` headers is ambiguous: the gateway reads one, a backend framework may read the
other (Starlette, as the MCP SDK uses it, takes the first), so a caller could pass the ownership check with its own
session id and act on another caller's. The same holds for `MCP-Protocol-Version`, `Last-Event-ID` (which stream is
replayed) and `Authorization` (which credential was verified). Such a request is refused with 400; otherwise the
value the gateway checked is the only one there is, and the one a backend receives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from hivegate.core import jsonrpc
from hivegate.core.protocol import SUPPORTED_VERSIONS
from hivegate.errors import InvalidMessage

__all__ = ["SINGLE_VALUED", "check_headers", "protocol_revision", "repeated_header"]

SINGLE_VALUED: Final[Mapping[bytes, str]] = {  # ASGI's lower-case name → the name the spec spells
    b"mcp-session-id": "Mcp-Session-Id",
    b"mcp-protocol-version": "MCP-Protocol-Version",
    b"last-event-id": "Last-Event-ID",
    b"authorization": "Authorization",
}


def repeated_header(headers: Iterable[tuple[bytes, bytes]]) -> InvalidMessage | None:
    """The error for a request carrying one of `SINGLE_VALUED` more than once (names are lower case, as in ASGI)."""
    seen: set[bytes] = set()
    for name, _ in headers:
        if name in SINGLE_VALUED:
            if name in seen:
                return InvalidMessage(
                    jsonrpc.INVALID_REQUEST, f"Bad Request: more than one {SINGLE_VALUED[name]} header"
                )
            seen.add(name)
    return None


def protocol_revision(headers: Iterable[tuple[bytes, bytes]], *, undeclared: str) -> str:
    """The MCP revision a request declares in `MCP-Protocol-Version`, or `undeclared` when it declares none (the
    front's default: 2025-03-26 on Streamable HTTP, as the spec says; 2024-11-05 on the legacy SSE transport)."""
    for name, value in headers:
        if name == b"mcp-protocol-version":
            return value.decode("latin-1")
    return undeclared


def check_headers(headers: Iterable[tuple[bytes, bytes]]) -> InvalidMessage | None:
    """The error for a request whose MCP headers the gateway refuses, or None: a state header given twice, or an
    `MCP-Protocol-Version` naming a revision it does not serve (the same answer on every front, before any reaches
    a backend)."""
    pairs = list(headers)
    repeated = repeated_header(pairs)
    if repeated is not None:
        return repeated
    for name, value in pairs:
        if name == b"mcp-protocol-version" and value.decode("latin-1") not in SUPPORTED_VERSIONS:
            shown = value.decode("latin-1")[:40]
            return InvalidMessage(jsonrpc.INVALID_REQUEST, f"Bad Request: Unsupported MCP-Protocol-Version: {shown}")
    return None
