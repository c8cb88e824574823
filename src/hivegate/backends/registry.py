"""Live client sessions: id → backend session, bound to the principal that created it, with idle expiry.

Limits: `max_sessions` in all and `max_per_owner` for one identity, so one caller cannot take every slot (each
session of a stdio server is a process). A caller at its own limit has its longest-idle session closed to make
room; when all of them are busy, the new one is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hivegate.backends.session import BackendSession
from hivegate.backends.transport import TransportFactory
from hivegate.core.singleflight import SingleFlight
from hivegate.errors import BackendError, HivegateError

__all__ = ["SessionEntry", "SessionLimitError", "SessionRegistry", "set_session_id_prefix"]

logger = logging.getLogger("hivegate.sessions")

_id_prefix = ""  # a worker's (`--workers`): the ids of the sessions it opens name it (`asgi.affinity`)


def set_session_id_prefix(prefix: str) -> None:
    """Start the id of every session this process opens from now on with `prefix` (once, in a worker)."""
    global _id_prefix
    _id_prefix = prefix


class SessionLimitError(HivegateError):
    """No room for another session (HTTP 503 with Retry-After)."""


@dataclass(slots=True)
class SessionEntry:
    session_id: str
    owner: str
    backend: BackendSession
    client_info: Mapping[str, Any] | None = None  # the client's `initialize` clientInfo (for the audit trail)
    init_params: Any = None  # the client's `initialize` params (recorded for other replicas when sessions are shared)


class SessionRegistry:
    """Sessions are never authentication: each one remembers its owner and only its owner may use it."""

    def __init__(
        self,
        *,
        ttl: float = 7200.0,
        max_sessions: int = 1000,
        max_per_owner: int = 50,
        on_restart: Callable[[], None] | None = None,
        output_hint: str | None = None,
        idle_timeout: float = 0.0,
        on_idle_stop: Callable[[], None] | None = None,
    ) -> None:
        """`on_restart`: told whenever a session's backend went away and was started again; `output_hint`: where
        the backends' output can be read, said when one goes away; `idle_timeout` (0: never): a session's backend
        idle this long is stopped until the session's next message (`BackendSession`), and `on_idle_stop` told."""
        self._on_restart = on_restart
        self._idle_timeout = idle_timeout
        self._on_idle_stop = on_idle_stop
        self._output_hint = output_hint
        self._ttl = ttl
        self._max = max_sessions
        self._max_per_owner = max_per_owner
        self._entries: dict[str, SessionEntry] = {}
        self._opening: SingleFlight[str, SessionEntry] = SingleFlight()
        self._reserved = 0
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[SessionEntry]:
        """The open sessions (a snapshot)."""
        return list(self._entries.values())

    def get(self, session_id: str, owner: str) -> SessionEntry | None:
        """The session, or None when it does not exist or belongs to someone else (indistinguishable on purpose)."""
        entry = self._entries.get(session_id)
        if entry is None or entry.owner != owner:
            return None
        return entry

    async def open(
        self,
        owner: str,
        factory: TransportFactory,
        *,
        name: str,
        request_timeout: float,
        session_id: str | None = None,
    ) -> SessionEntry:
        """Start a backend session for `owner`. With a fixed `session_id`, concurrent opens share one session.

        Raises `SessionLimitError` when there is no room and `BackendError` when the backend cannot start.
        """
        if session_id is None:
            return await self._start(owner, factory, name, request_timeout, _id_prefix + secrets.token_urlsafe(24))
        existing = self.get(session_id, owner)
        if existing is not None:
            return existing
        entry = await self._opening.run(
            session_id, lambda: self._start(owner, factory, name, request_timeout, session_id)
        )
        if entry.owner != owner:  # callers check ownership before opening a fixed id; never hand one over anyway
            raise BackendError("the session belongs to another caller")
        return entry

    async def _start(
        self, owner: str, factory: TransportFactory, name: str, request_timeout: float, session_id: str
    ) -> SessionEntry:
        await self._make_room(owner)
        self._reserved += 1
        try:
            backend = BackendSession(
                factory,
                name=name,
                request_timeout=request_timeout,
                on_restart=self._on_restart,
                idle_timeout=self._idle_timeout,
                on_idle_stop=self._on_idle_stop,
            )
            await backend.start()
            entry = SessionEntry(session_id=session_id, owner=owner, backend=backend)
            self._entries[entry.session_id] = entry
        finally:
            self._reserved -= 1
        self._start_reaper()
        return entry

    async def _make_room(self, owner: str) -> None:
        mine = [e for e in self._entries.values() if e.owner == owner]
        if len(mine) >= self._max_per_owner:
            idle = [e for e in mine if not e.backend.busy]
            if not idle:
                raise SessionLimitError(f"too many sessions for this caller (limit {self._max_per_owner})")
            oldest = min(idle, key=lambda e: e.backend.last_used)
            logger.info("closing session %s… to make room for a new one of the same caller", oldest.session_id[:6])
            await self.remove(oldest.session_id)
        if len(self._entries) + self._reserved >= self._max:
            raise SessionLimitError(f"too many sessions (limit {self._max})")

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

    async def _reap(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        interval = max(1.0, min(60.0, self._ttl / 4))
        while self._entries:
            await sleep(interval)
            deadline = time.monotonic() - self._ttl
            for session_id, entry in list(self._entries.items()):
                if not entry.backend.busy and entry.backend.last_used < deadline:
                    logger.info("session %s… expired after %.0f s idle", session_id[:6], self._ttl)
                    await self.remove(session_id)
