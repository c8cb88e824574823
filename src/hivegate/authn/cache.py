"""A bounded cache of verified tokens: token string → `Principal`, trusted until a deadline (usually `exp`).

A hit is one dict lookup and one clock read. When full, expired entries are dropped first, then the oldest eighth,
so a burst of new tokens costs one scan per `max_size / 8` inserts rather than one per insert.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hivegate.core.principal import Principal

__all__ = ["PrincipalCache"]


class PrincipalCache:
    """Verified principals by token, each valid until its own deadline (seconds since the epoch)."""

    __slots__ = ("_clock", "_entries", "_max_size")

    def __init__(self, max_size: int, *, clock: Callable[[], float] = time.time) -> None:
        self._max_size = max_size
        self._clock = clock
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, token: str) -> Principal | None:
        """The cached principal for `token`, or None when absent or past its deadline."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            self._entries.pop(token, None)
            return None
        return entry[0]

    def put(self, token: str, principal: Principal, until: float) -> None:
        """Remember `principal` for `token` until `until`; a cache of size 0 remembers nothing."""
        if self._max_size <= 0:
            return
        if len(self._entries) >= self._max_size and token not in self._entries:
            self._evict()
        self._entries[token] = (principal, until)

    def _evict(self) -> None:
        now = self._clock()
        for token in [t for t, (_, until) in self._entries.items() if until <= now]:
            del self._entries[token]
        if len(self._entries) >= self._max_size:
            for token in list(self._entries)[: max(1, self._max_size // 8)]:
                del self._entries[token]

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
