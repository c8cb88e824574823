"""`MemoryStore`: the storage interface in one process's memory, for tests and single-replica setups that may forget
everything on restart."""

from __future__ import annotations

import time

from hivegate.storage._records import check_namespace, check_ttl, decode, encode
from hivegate.storage.base import Record, StorageError

__all__ = ["MemoryStore"]

_Entry = tuple[float, bytes]  # (monotonic expiry, JSON)


class MemoryStore:
    """Records in a dict per namespace, kept as JSON so a caller's later changes to a dict never reach the store.

    Every operation runs without awaiting, so on one event loop each is atomic. Expired records are dropped when read,
    and all of them by a sweep that runs on a write once `purge_interval` seconds have passed or once there have been
    as many writes (at least 1024) as the last sweep left records: sweeps cost O(1) per write, amortised, and the store
    holds at most about twice the live records of the last sweep, plus 1024.
    """

    def __init__(self, *, purge_interval: float = 60.0) -> None:
        self._data: dict[str, dict[str, _Entry]] = {}
        self._purge_interval = purge_interval
        self._next_purge = time.monotonic() + purge_interval
        self._writes = 0
        self._swept_size = 0
        self._closed = False

    def __len__(self) -> int:
        """Records held, counting expired ones not yet swept."""
        return sum(len(records) for records in self._data.values())

    async def get(self, namespace: str, key: str) -> Record | None:
        data = self._live(namespace, key, time.monotonic())
        return None if data is None else decode(data)

    async def put(self, namespace: str, key: str, value: Record, ttl: float) -> None:
        self._store(namespace, key, value, ttl)

    async def add(self, namespace: str, key: str, value: Record, ttl: float) -> bool:
        if self._live(namespace, key, time.monotonic()) is not None:
            return False
        self._store(namespace, key, value, ttl)
        return True

    async def take(self, namespace: str, key: str) -> Record | None:
        data = self._live(namespace, key, time.monotonic())
        if data is None:
            return None
        del self._data[namespace][key]
        return decode(data)

    async def delete(self, namespace: str, key: str) -> None:
        self._check(namespace)
        records = self._data.get(namespace)
        if records is not None:
            records.pop(key, None)

    async def ping(self) -> None:
        if self._closed:
            raise StorageError("the memory store is closed")

    async def aclose(self) -> None:
        self._closed = True
        self._data.clear()

    def purge_expired(self) -> int:
        """Drop every expired record now; returns how many were dropped."""
        now = time.monotonic()
        dropped = 0
        for namespace in list(self._data):
            records = self._data[namespace]
            expired = [key for key, (expires_at, _) in records.items() if expires_at <= now]
            for key in expired:
                del records[key]
            dropped += len(expired)
            if not records:
                del self._data[namespace]
        self._writes = 0
        self._swept_size = len(self)
        self._next_purge = now + self._purge_interval
        return dropped

    def _check(self, namespace: str) -> None:
        if self._closed:
            raise StorageError("the memory store is closed")
        check_namespace(namespace)

    def _live(self, namespace: str, key: str, now: float) -> bytes | None:
        self._check(namespace)
        records = self._data.get(namespace)
        entry = None if records is None else records.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._data[namespace][key]
            return None
        return entry[1]

    def _store(self, namespace: str, key: str, value: Record, ttl: float) -> None:
        self._check(namespace)
        check_ttl(ttl)
        data = encode(value)
        now = time.monotonic()
        self._data.setdefault(namespace, {})[key] = (now + ttl, data)
        self._writes += 1
        if now >= self._next_purge or self._writes >= max(1024, self._swept_size):
            self.purge_expired()
