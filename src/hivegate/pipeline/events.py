"""Event ids bound to the session that received them (MCP Streamable HTTP, "Resumability and Redelivery").

A resumable server replays a stream after the event a client names in `Last-Event-ID`. The MCP SDK's event stores
look the event up by id alone, whichever session asks, so a caller that learns another's event id (they are short
counters) could replay that caller's stream. The reverse proxy therefore hands out sealed ids: the backend's id with
a MAC over the session id and the backend's id, under a key of the gateway's own. A `Last-Event-ID` is accepted only
when its MAC matches the session of the request that sends it; the backend then receives its own id back.

The key is random per process unless one is given (or `share_key` set one for the process: the workers of one
gateway seal alike), so ids sealed before a restart are refused after it (the client opens a fresh stream); replicas
behind one load balancer need the same key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

__all__ = ["EventIds", "share_key"]

_TAG_BYTES: Final = 16
_shared: bytes | None = None


def share_key(key: bytes) -> None:
    """Seal with `key` in every `EventIds` made from now on without a key of its own (a worker of several)."""
    global _shared
    _shared = key


class EventIds:
    """Seals and opens event ids for one gateway."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or _shared or secrets.token_bytes(32)

    def seal(self, session_id: str | None, event_id: str) -> str:
        """The id the client sees for the backend's `event_id` on `session_id`."""
        return f"{self._tag(session_id, event_id)}.{event_id}"

    def open(self, session_id: str | None, sealed: str) -> str | None:
        """The backend's id inside `sealed` when it was sealed for `session_id`, else None."""
        tag, dot, event_id = sealed.partition(".")
        if not dot or not hmac.compare_digest(tag, self._tag(session_id, event_id)):
            return None
        return event_id

    def _tag(self, session_id: str | None, event_id: str) -> str:
        mac = hmac.new(self._key, f"{session_id or ''}\x00{event_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:_TAG_BYTES]).rstrip(b"=").decode()
