"""Pipeline stage "per-principal limits": no caller can take service from another.

Each principal (issuer + subject) may have at most `max_requests` MCP requests in flight and `max_streams` event
streams open at once (standalone GET streams and legacy SSE connections), on every front. A caller at its limit is
answered `429` with `Retry-After`; every other caller is unaffected. Sessions per caller are capped where they are
kept (`SessionRegistry`, the reverse proxy's session table).

The defaults leave most of the backend connection pool (1,024 connections in front of a remote server) to others:
a caller at both limits holds at most 72 connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_MAX_REQUESTS", "DEFAULT_MAX_STREAMS", "SLOT_KEY", "CallerLimits", "Slot"]

DEFAULT_MAX_REQUESTS: Final = 64
DEFAULT_MAX_STREAMS: Final = 8
SLOT_KEY: Final = "hivegate.slot"  # where the gateway puts a request's slot in the ASGI scope


@dataclass(slots=True)
class _Use:
    requests: int = 0
    streams: int = 0


class Slot:
    """One request or stream held by a caller; `release()` (idempotent) gives it back."""

    __slots__ = ("_key", "_limits", "_stream")

    def __init__(self, limits: CallerLimits, key: str, stream: bool) -> None:
        self._limits: CallerLimits | None = limits
        self._key = key
        self._stream = stream

    def release(self) -> None:
        if self._limits is not None:
            self._limits._release(self._key, self._stream)
            self._limits = None

    def hand_over(self) -> Slot:
        """The same slot, for whoever finishes the request later (a legacy SSE answer arrives on the stream after
        the POST was accepted); releasing this one then does nothing."""
        kept = Slot.__new__(Slot)
        kept._limits, kept._key, kept._stream = self._limits, self._key, self._stream
        self._limits = None
        return kept


class CallerLimits:
    """Counts what each principal holds; `take` a slot per request or stream."""

    def __init__(self, *, max_requests: int = DEFAULT_MAX_REQUESTS, max_streams: int = DEFAULT_MAX_STREAMS) -> None:
        self.max_requests = max_requests
        self.max_streams = max_streams
        self._use: dict[str, _Use] = {}

    def take(self, key: str, *, stream: bool) -> Slot | None:
        """A slot for `key` (a principal's key), or None when it holds as many as it may."""
        use = self._use.get(key)
        if use is None:
            use = self._use[key] = _Use()
        if stream:
            if use.streams >= self.max_streams:
                return None
            use.streams += 1
        else:
            if use.requests >= self.max_requests:
                return None
            use.requests += 1
        return Slot(self, key, stream)

    def refusal(self, *, stream: bool) -> str:
        """Why a caller at its limit is refused."""
        if stream:
            return f"too many open streams for this caller (limit {self.max_streams})"
        return f"too many requests in flight for this caller (limit {self.max_requests})"

    def held(self, key: str) -> tuple[int, int]:
        """(requests, streams) `key` holds now."""
        use = self._use.get(key)
        return (0, 0) if use is None else (use.requests, use.streams)

    def _release(self, key: str, stream: bool) -> None:
        use = self._use.get(key)
        if use is None:
            return
        if stream:
            use.streams -= 1
        else:
            use.requests -= 1
        if use.requests <= 0 and use.streams <= 0:
            del self._use[key]
