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
a request by itself: the session then works on the replica that holds it, and the failure is logged.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hivegate.storage.base import KeyValueStore, StorageError

__all__ = ["SharedSession", "SharedSessions"]

logger = logging.getLogger("hivegate.sessions")

NAMESPACE = "session"
ENDED = "session-ended"
ENDED_RECHECK = 5.0  # seconds between a replica's checks that a session it holds was not ended elsewhere
_RENEWED_LIMIT = 10_000


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

    @property
    def store(self) -> KeyValueStore:
        return self._store

    async def save(self, session_id: str, record: SharedSession) -> None:
        value = {"owner": record.owner, "init": record.init_params, "client_info": record.client_info}
        await self._quietly("save", self._store.put(NAMESPACE, _key(session_id), value, self._ttl))
        now = time.monotonic()
        if len(self._renewed) >= _RENEWED_LIMIT:  # forget sessions that expired without a DELETE
            self._renewed = {k: t for k, t in self._renewed.items() if now - t < self._ttl}
        self._renewed[session_id] = now

    async def load(self, session_id: str) -> SharedSession | None:
        found: Any = await self._quietly("load", self._store.get(NAMESPACE, _key(session_id)))
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
        return await self._quietly("load", self._store.get(ENDED, _key(session_id))) is not None

    def _forget(self, session_id: str) -> None:
        self._renewed.pop(session_id, None)
        self._checked.pop(session_id, None)

    async def aclose(self) -> None:
        await self._store.aclose()

    async def _quietly(self, what: str, operation: Any) -> Any:
        try:
            result = await operation
        except (StorageError, OSError) as exc:
            if not self._failing:
                logger.warning("session store: %s failed (sessions stay on this replica): %s", what, exc)
            self._failing = True
            return None
        if self._failing:
            logger.info("session store: reachable again")
            self._failing = False
        return result


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
