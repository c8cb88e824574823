"""The aiohttp session for one connection to a remote MCP backend (Streamable HTTP or legacy SSE).

Streams live as long as the backend session, so there is no total timeout; connecting must succeed within 10 s,
and each caller of the session bounds its own reads. Backend URLs are the administrator's configuration, not
input, so the SSRF guard does not apply; credentials on them are checked at load (https, or http on loopback).
"""

from __future__ import annotations

import aiohttp

from hivegate import __version__

__all__ = ["CONNECT_TIMEOUT", "streaming_session"]

CONNECT_TIMEOUT = 10.0


def streaming_session() -> aiohttp.ClientSession:
    """A new session (made inside the running event loop, as aiohttp requires)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
        headers={"User-Agent": f"hivegate/{__version__}"},
    )
