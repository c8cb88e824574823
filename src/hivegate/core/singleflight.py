"""One run of a piece of work per key, shared by everyone who asks for it while it runs.

Used wherever concurrent callers would otherwise send the same request: token introspection, token exchange, JWKS
and discovery fetches, client metadata documents, opening a backend session. The work runs in its own task, so a
caller that gives up (a client disconnects, a timeout) does not cancel it for the others, and its outcome is always
retrieved, so a task whose callers all left is never reported as an unhandled exception. Nothing is cached after the
work ends: callers keep their own caches, with their own lifetimes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """`run(key, work)` calls `work()` unless a call for `key` is already running, and returns its outcome."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._running

    def start(self, key: K, work: Callable[[], Awaitable[V]]) -> asyncio.Task[V]:
        """The running task for `key`, started with `work` if there is none (for work nobody waits on)."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done: self._landed(key, done))
        return task

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """The outcome of the one running call for `key` (its result, or its exception raised here)."""
        return await asyncio.shield(self.start(key, work))

    def cancel(self) -> None:
        """Cancel every running call (its waiters get `CancelledError`), e.g. when their owner closes."""
        for task in list(self._running.values()):
            task.cancel()

    def _landed(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved, so a task whose callers all left is not reported as unhandled
