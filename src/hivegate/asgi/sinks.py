"""Queue-backed sinks: where a backend session delivers the messages for one HTTP exchange."""

from __future__ import annotations

import asyncio
import contextlib

from hivegate.asgi.types import Receive
from hivegate.core.jsonrpc import Message

__all__ = ["QueueSink", "next_or_disconnect"]


class QueueSink:
    def __init__(self, *, streaming: bool) -> None:
        self.streaming = streaming
        self.queue: asyncio.Queue[Message] = asyncio.Queue()

    def deliver(self, message: Message) -> None:
        self.queue.put_nowait(message)


async def next_or_disconnect(sink: QueueSink, disconnect: asyncio.Task[object], timeout: float) -> Message | None:
    """The next message for `sink`; None when nothing came within `timeout`. Raises ConnectionError on disconnect."""
    if not sink.queue.empty():
        return sink.queue.get_nowait()
    getter = asyncio.ensure_future(sink.queue.get())
    done, _ = await asyncio.wait({getter, disconnect}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    if disconnect in done:
        raise ConnectionError("client disconnected")
    return None


async def wait_disconnect(receive: Receive) -> object:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return message
