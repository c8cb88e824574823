"""The one storage interface of the authorization server: namespaced JSON records with expiry, plus the two atomic
operations its security properties rest on.

- `add` (set if absent) makes one-time things one-time: an authorization code is redeemed once, a refresh token is
  rotated once, across every replica that shares the store.
- `take` (get and delete) hands a pending login to exactly one callback.

Records are JSON objects (`dict[str, Any]`); keys are strings chosen by the caller (hashes, never raw secrets).
An expired record is absent for every operation. Implementations: `memory` (one process), `sqlite` (a file: survives
restarts; the embedded default), `redis` (shared by replicas). They all pass one contract suite
(`tests/unit/storage/storage_contract.py`).
"""

from __future__ import annotations

from typing import Any, Protocol

from hivegate.errors import HivegateError

__all__ = ["KeyValueStore", "Record", "StorageError"]

Record = dict[str, Any]


class StorageError(HivegateError):
    """The store cannot be reached or answered nonsense; the message never contains stored values."""


class KeyValueStore(Protocol):
    async def get(self, namespace: str, key: str) -> Record | None:
        """The record, or None if absent or expired."""
        ...

    async def put(self, namespace: str, key: str, value: Record, ttl: float) -> None:
        """Store (or replace) a record for `ttl` seconds (> 0)."""
        ...

    async def add(self, namespace: str, key: str, value: Record, ttl: float) -> bool:
        """Store a record only if none is present (an expired one counts as absent); True if stored. Atomic."""
        ...

    async def take(self, namespace: str, key: str) -> Record | None:
        """Remove and return a record (None if absent or expired). Atomic: two takers never both get it."""
        ...

    async def delete(self, namespace: str, key: str) -> None:
        """Remove a record if present."""
        ...

    async def ping(self) -> None:
        """Raise `StorageError` if the store is unusable (for readiness checks)."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
