"""Queue-backed sinks, and the loop that relays a session's messages to an open SSE stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from hivegate.asgi.http import ClientGone, SSEStream
from hivegate.asgi.types import Receive, Send
from hivegate.backends.session import BackendSession
from hivegate.core.jsonrpc import Message
from hivegate.errors import HivegateError

__all__ = ["QueueSink", "RequestEnded", "next_or_disconnect", "pump_stream", "wait_disconnect"]


class RequestEnded(HivegateError):
    """The client cancelled the request: no answer will come."""


class QueueSink:
    """A sink read by one HTTP exchange. A per-request sink ends when its request is cancelled; a session stream
    (`per_request=False`) carries many requests and outlives each of them.

    A deque and one future rather than an `asyncio.Queue`: this is on every request's path.
    """

    __slots__ = ("_items", "_per_request", "_waiter", "closed", "streaming")

    def __init__(self, *, streaming: bool, per_request: bool = True) -> None:
        self.streaming = streaming
        self.closed = False
        self._per_request = per_request
        self._items: deque[Message | None] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def deliver(self, message: Message) -> None:
        if not self.closed:
            self._items.append(message)
            self._wake()

    def end(self) -> None:
        if self._per_request:
            self._items.append(None)
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def wait_disconnect(receive: Receive) -> object:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return message


async def next_or_disconnect(sink: QueueSink, disconnect: asyncio.Future[Any] | None, timeout: float) -> Message | None:
    """The next message for `sink`; None when nothing came within `timeout`.

    Raises `ConnectionError` when the client disconnected (known only while a `disconnect` watcher runs) and
    `RequestEnded` when the request was cancelled.
    """
    items = sink._items
    if not items:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        sink._waiter = waiter
        timer = loop.call_later(timeout, _settle, waiter)
        if disconnect is not None:
            disconnect.add_done_callback(waiter_wake := _waker(waiter))
        try:
            await waiter
        finally:
            timer.cancel()
            sink._waiter = None
            if disconnect is not None:
                disconnect.remove_done_callback(waiter_wake)
        if not items:
            if disconnect is not None and disconnect.done():
                raise ConnectionError("client disconnected")
            return None
    item = items.popleft()
    if item is None:
        raise RequestEnded
    return item


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _waker(waiter: asyncio.Future[None]) -> Callable[[asyncio.Future[Any]], None]:
    return lambda _done: _settle(waiter)


async def pump_stream(
    receive: Receive,
    send: Send,
    backend: BackendSession,
    sink: QueueSink,
    *,
    headers: list[tuple[bytes, bytes]],
    keepalive: float,
    first_event: tuple[str, bytes] | None = None,
    idle: float | None = None,
) -> None:
    """Relay everything delivered to `sink` as SSE `message` events until the client leaves, the session ends, or
    (with `idle`) nothing but keep-alive comments went out for `idle` seconds (the client reconnects)."""
    stream = SSEStream(send)
    disconnect = asyncio.ensure_future(wait_disconnect(receive))
    loop = asyncio.get_running_loop()
    last = loop.time()
    try:
        await stream.start(headers)
        if first_event is not None:
            await stream.event(first_event[1], event=first_event[0])
        while backend.alive:
            wait = keepalive if idle is None else max(0.0, min(keepalive, last + idle - loop.time()))
            item = await next_or_disconnect(sink, disconnect, wait)
            if item is None:
                if idle is not None and loop.time() - last >= idle:
                    break
                await stream.comment()
            else:
                last = loop.time()
                await stream.event(orjson.dumps(item))
        await stream.end()  # the session ended or the stream idled: the client sees a complete response
    except (ConnectionError, ClientGone, RequestEnded):
        pass
    finally:
        await backend.abandon(sink, cancel=False)
        disconnect.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await disconnect
