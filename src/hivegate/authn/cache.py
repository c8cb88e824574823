"""Bounded caches with a deadline per entry: verified tokens (token → `Principal`, usually until `exp`) and refused
ones (token digest → why, for a short while).

A hit is one dict lookup and one clock read. When full, expired entries are dropped first, then the oldest eighth,
so a burst of new keys costs one scan per `max_size / 8` inserts rather than one per insert.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from hivegate.core.principal import Principal

__all__ = ["DeadlineCache", "PrincipalCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class DeadlineCache(Generic[K, V]):
    """Values by key, each valid until its own deadline (read from `clock`), at most `max_size` of them."""

    __slots__ = ("_clock", "_entries", "_max_size")

    def __init__(self, max_size: int, *, clock: Callable[[], float] = time.time) -> None:
        self._max_size = max_size
        self._clock = clock
        self._entries: dict[K, tuple[V, float]] = {}

    def get(self, key: K) -> V | None:
        """The cached value for `key`, or None when absent or past its deadline."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            self._entries.pop(key, None)
            return None
        return entry[0]

    def put(self, key: K, value: V, until: float) -> None:
        """Remember `value` for `key` until `until`; a cache of size 0 remembers nothing."""
        if self._max_size <= 0:
            return
        if len(self._entries) >= self._max_size and key not in self._entries:
            self._evict()
        self._entries[key] = (value, until)

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (_, until) in self._entries.items() if until <= now]:
            del self._entries[key]
        if len(self._entries) >= self._max_size:
            for key in list(self._entries)[: max(1, self._max_size // 8)]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()


PrincipalCache = DeadlineCache[str, Principal]
"""Verified principals by token."""
