"""Client sessions recorded in a store shared by replicas, so any replica can serve any session.

A session is recorded when its `initialize` succeeds: its owner (the identity that created it) and the client's
`initialize` parameters. A replica that gets a request for a session it does not hold looks the record up and, if
the caller is the owner, opens the session locally under the same id and replays the client's `initialize` to its
backends; from then on it serves it like one of its own. Records expire after the session TTL without use; use
renews them (at most every tenth of the TTL, so the hot path rarely waits on the store). `DELETE` removes them.

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

from hivegate.authserver.storage.base import KeyValueStore, StorageError

__all__ = ["SharedSession", "SharedSessions"]

logger = logging.getLogger("hivegate.sessions")

NAMESPACE = "session"
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
        info = found.get("client_info")
        return SharedSession(found["owner"], found.get("init"), info if isinstance(info, dict) else None)

    async def renew(self, session_id: str, record: SharedSession) -> None:
        """Keep the record alive while the session is used (a write at most every tenth of the TTL)."""
        last = self._renewed.get(session_id)
        if last is not None and time.monotonic() - last < self._ttl / 10:
            return
        await self.save(session_id, record)

    async def delete(self, session_id: str) -> None:
        self._renewed.pop(session_id, None)
        await self._quietly("delete", self._store.delete(NAMESPACE, _key(session_id)))

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
