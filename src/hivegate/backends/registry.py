"""Live client sessions: id → backend session, bound to the principal that created it, with idle expiry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass

from hivegate.backends.session import BackendSession

__all__ = ["SessionEntry", "SessionRegistry"]

logger = logging.getLogger("hivegate.sessions")


@dataclass(slots=True)
class SessionEntry:
    session_id: str
    owner: str
    backend: BackendSession
    protocol_version: str | None = None


class SessionRegistry:
    """Sessions are never authentication: each one remembers its owner and only its owner may use it."""

    def __init__(self, *, ttl: float = 7200.0, max_sessions: int = 1000) -> None:
        self._ttl = ttl
        self._max = max_sessions
        self._entries: dict[str, SessionEntry] = {}
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def full(self) -> bool:
        return len(self._entries) >= self._max

    def add(self, owner: str, backend: BackendSession, *, session_id: str | None = None) -> SessionEntry:
        entry = SessionEntry(session_id=session_id or secrets.token_urlsafe(24), owner=owner, backend=backend)
        self._entries[entry.session_id] = entry
        self._start_reaper()
        return entry

    def get(self, session_id: str, owner: str) -> SessionEntry | None:
        """The session, or None when it does not exist or belongs to someone else (indistinguishable on purpose)."""
        entry = self._entries.get(session_id)
        if entry is None or not secrets.compare_digest(entry.owner, owner):
            return None
        return entry

    async def remove(self, session_id: str) -> None:
        entry = self._entries.pop(session_id, None)
        if entry is not None:
            await entry.backend.close()

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        entries, self._entries = list(self._entries.values()), {}
        await asyncio.gather(*(entry.backend.close() for entry in entries), return_exceptions=True)

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap())

    async def _reap(self) -> None:
        interval = max(1.0, min(60.0, self._ttl / 4))
        while self._entries:
            await asyncio.sleep(interval)
            deadline = time.monotonic() - self._ttl
            for session_id, entry in list(self._entries.items()):
                if entry.backend.last_used < deadline:
                    logger.info("session %s… expired after %.0f s idle", session_id[:6], self._ttl)
                    await self.remove(session_id)
