"""Client sessions recorded in a store shared by replicas, so any replica can serve any session.

A session is recorded when its `initialize` succeeds: its owner (the identity that created it) and the client's
`initialize` parameters. A replica that gets a request for a session it does not hold looks the record up and, if
the caller is the owner, opens the session locally under the same id and replays the client's `initialize` to its
backends; from then on it serves it like one of its own. Records expire after the session TTL without use; use
renews them (at most every tenth of the TTL, so the hot path rarely waits on the store). `DELETE` removes them and
leaves a marker that outlives any record: a replica still holding the session sees it within `ENDED_RECHECK`
seconds of the DELETE (and always before it renews the record), drops its copy and answers 404; a record written
back by a renewal racing the DELETE is never loaded, so an ended session cannot live on elsewhere.

Keys are SHA-256 digests of session ids (a session id is a bearer secret of sorts). A store that fails never fails
a request for a session this replica holds: the session goes on here, and the failure is logged once. A session it
does not hold cannot be looked up then: `load` raises `SessionStoreUnavailable` (the caller answers 503, retry
later), never "no such session", which would end a session that still exists. A record that could not be written
(a session opened during the outage) is written as soon as the store answers again, so the session can move between
replicas again; for `RECOVERY_GRACE` seconds after its store came back, a replica answers a record it does not find
as unavailable too, since the replica that opened the session may still be writing it. While the store fails, at
most one operation per `PROBE_INTERVAL` waits on it (the probe); the others fail at once, so an outage costs
requests one store timeout, not one per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hivegate.errors import HivegateError
from hivegate.storage.base import KeyValueStore, StorageError

__all__ = ["SessionStoreUnavailable", "SharedSession", "SharedSessions"]

logger = logging.getLogger("hivegate.sessions")

NAMESPACE = "session"
ENDED = "session-ended"
ENDED_RECHECK = 5.0  # seconds between a replica's checks that a session it holds was not ended elsewhere
_RENEWED_LIMIT = 10_000
PROBE_INTERVAL = 1.0  # seconds between attempts to reach a failing store
RECOVERY_GRACE = 3 * PROBE_INTERVAL  # long enough for every replica to notice the store is back and write its records
_FAILED = object()


class SessionStoreUnavailable(HivegateError):
    """The store could not be asked whether a session exists (it may well: retry later)."""


@dataclass(frozen=True, slots=True)
class SharedSession:
    owner: str
    init_params: Any
    client_info: Mapping[str, Any] | None = None


class SharedSessions:
    def __init__(self, store: KeyValueStore, *, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._renewed: dict[str, float] = {}  # session id → monotonic time of the last write from here
        self._checked: dict[str, float] = {}  # session id → monotonic time of the last check for its end
        self._failing = False
        self._probe_at = 0.0  # while failing: the monotonic time from which the store is tried again
        self._recovered_at = float("-inf")  # monotonic time the store last answered again after failing
        self._unsaved: dict[str, SharedSession] = {}  # records to write once the store answers
        self._flushing: asyncio.Task[None] | None = None

    @property
    def store(self) -> KeyValueStore:
        return self._store

    async def save(self, session_id: str, record: SharedSession) -> None:
        value = {"owner": record.owner, "init": record.init_params, "client_info": record.client_info}
        if await self._quietly("save", self._store.put(NAMESPACE, _key(session_id), value, self._ttl)) is _FAILED:
            if len(self._unsaved) < _RENEWED_LIMIT:
                self._unsaved[session_id] = record  # written once the store answers (or at the next renewal)
            return
        self._unsaved.pop(session_id, None)
        now = time.monotonic()
        if len(self._renewed) >= _RENEWED_LIMIT:  # forget sessions that expired without a DELETE
            self._renewed = {k: t for k, t in self._renewed.items() if now - t < self._ttl}
        self._renewed[session_id] = now

    async def load(self, session_id: str) -> SharedSession | None:
        """The session's record; None when there is none (or it ended). Raises `SessionStoreUnavailable` when the
        store cannot be asked."""
        found: Any = await self._quietly("load", self._store.get(NAMESPACE, _key(session_id)))
        if found is _FAILED:
            raise SessionStoreUnavailable("the session store is unavailable")
        if found is None and time.monotonic() - self._recovered_at < RECOVERY_GRACE:
            raise SessionStoreUnavailable("the session store has just come back and may not hold every session yet")
        if not isinstance(found, dict) or not isinstance(found.get("owner"), str):
            return None
        if await self._ended(session_id):  # written back by a renewal that raced the DELETE
            return None
        info = found.get("client_info")
        return SharedSession(found["owner"], found.get("init"), info if isinstance(info, dict) else None)

    async def renew(self, session_id: str, record: SharedSession) -> bool:
        """Keep the record alive while the session is used (a write at most every tenth of the TTL); False when
        the session was ended (DELETE) at another replica: the caller drops its copy."""
        now = time.monotonic()
        checked = self._checked.get(session_id)
        last = self._renewed.get(session_id)
        write = last is None or now - last >= self._ttl / 10
        if write or checked is None or now - checked >= min(ENDED_RECHECK, self._ttl / 10):
            if len(self._checked) >= _RENEWED_LIMIT:
                self._checked = {k: t for k, t in self._checked.items() if now - t < self._ttl}
            self._checked[session_id] = now
            if await self._ended(session_id):
                self._forget(session_id)
                return False
        if write:
            await self.save(session_id, record)
        return True

    async def delete(self, session_id: str) -> None:
        self._forget(session_id)
        # twice the TTL: longer than any record a racing renewal may write back
        await self._quietly("delete", self._store.put(ENDED, _key(session_id), {"ended": True}, 2 * self._ttl))
        await self._quietly("delete", self._store.delete(NAMESPACE, _key(session_id)))

    async def _ended(self, session_id: str) -> bool:
        found = await self._quietly("load", self._store.get(ENDED, _key(session_id)))
        return found is not None and found is not _FAILED

    def _forget(self, session_id: str) -> None:
        self._unsaved.pop(session_id, None)
        self._renewed.pop(session_id, None)
        self._checked.pop(session_id, None)

    async def aclose(self) -> None:
        await self._store.aclose()

    async def _quietly(self, what: str, operation: Any) -> Any:
        """The operation's result, or `_FAILED` when the store failed (or is failing and not due for a probe)."""
        if self._failing:
            now = time.monotonic()
            if now < self._probe_at:
                operation.close()  # never started: fail at once rather than wait for the store's timeout
                return _FAILED
            self._probe_at = now + PROBE_INTERVAL  # this call is the probe; others fail at once meanwhile
        try:
            result = await operation
        except (StorageError, OSError) as exc:
            if not self._failing:
                logger.warning("session store: %s failed (sessions stay on this replica): %s", what, exc)
            self._failing = True
            self._probe_at = time.monotonic() + PROBE_INTERVAL
            return _FAILED
        if self._failing:
            logger.info("session store: reachable again")
            self._failing = False
            self._recovered_at = time.monotonic()
            if self._unsaved and (self._flushing is None or self._flushing.done()):
                self._flushing = asyncio.ensure_future(self._flush())
        return result

    async def _flush(self) -> None:
        """Write the records the store could not take while it failed."""
        for session_id, record in list(self._unsaved.items()):
            if session_id in self._unsaved:  # not ended meanwhile
                await self.save(session_id, record)


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
