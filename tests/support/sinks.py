"""A front end's sink in memory: what a `BackendSession` delivers for one request (its answer, and on a stream what
the backend sends before it), kept in order, with waits that have a deadline."""

from __future__ import annotations

import asyncio

from hivegate.core.jsonrpc import Message


class Sink:
    closed = False

    def __init__(self, *, streaming: bool = True) -> None:
        self.streaming = streaming
        self.items: list[Message] = []
        self.event = asyncio.Event()

    def deliver(self, message: Message) -> None:
        self.items.append(message)
        self.event.set()

    def end(self) -> None:
        self.event.set()

    async def next(self) -> Message:
        """The next item delivered (taken off the list), within 5 s."""
        while not self.items:
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), 5)
        return self.items.pop(0)

    async def answer(self) -> Message:
        """The first answer (an item that is not a request or notification), within 5 s."""
        async with asyncio.timeout(5):
            while not any("method" not in m for m in self.items):
                self.event.clear()
                await self.event.wait()
        return next(m for m in self.items if "method" not in m)
