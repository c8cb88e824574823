"""The MCP revisions the gateway serves (spec "Versioning")."""

from __future__ import annotations

from typing import Final

__all__ = [
    "BATCH_VERSIONS",
    "HANDSHAKE_VERSIONS",
    "LEGACY_SSE_VERSION",
    "MODERN_VERSIONS",
    "SUPPORTED_VERSIONS",
    "UNDECLARED_VERSION",
    "VERSION_META",
]

HANDSHAKE_VERSIONS: Final = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
MODERN_VERSIONS: Final = frozenset({"2026-07-28"})  # stateless: no initialize, no session, `_meta` on every request
SUPPORTED_VERSIONS: Final = HANDSHAKE_VERSIONS | MODERN_VERSIONS
VERSION_META: Final = "io.modelcontextprotocol/protocolVersion"  # where a 2026-07-28 request names its revision
BATCH_VERSIONS: Final = frozenset({"2025-03-26"})  # JSON-RPC batches came with 2025-03-26 and left with 2025-06-18
UNDECLARED_VERSION: Final = "2025-03-26"  # a Streamable HTTP request without MCP-Protocol-Version (spec: assume it)
LEGACY_SSE_VERSION: Final = "2024-11-05"  # the revision of the HTTP+SSE transport, which has no version header
