"""Queue-backed sinks, and the loop that relays a session's messages to an open SSE stream."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson

from hivegate.asgi.http import ClientGone, SSEStream
from hivegate.asgi.types import Receive, Send
from hivegate.backends.session import BackendSession
from hivegate.core.jsonrpc import Message

__all__ = ["QueueSink", "RequestEnded", "next_or_disconnect", "pump_stream", "wait_disconnect"]


class RequestEnded(Exception):
    """The client cancelled the request: no answer will come."""


class QueueSink:
    """A sink read by one HTTP exchange. A per-request sink ends when its request is cancelled; a session stream
    (`per_request=False`) carries many requests and outlives each of them."""

    def __init__(self, *, streaming: bool, per_request: bool = True) -> None:
        self.streaming = streaming
        self.closed = False
        self._per_request = per_request
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue()

    def deliver(self, message: Message) -> None:
        if not self.closed:
            self.queue.put_nowait(message)

    def end(self) -> None:
        if self._per_request:
            self.queue.put_nowait(None)


async def wait_disconnect(receive: Receive) -> object:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return message


async def next_or_disconnect(sink: QueueSink, disconnect: asyncio.Future[Any], timeout: float) -> Message | None:
    """The next message for `sink`; None when nothing came within `timeout`.

    Raises `ConnectionError` when the client disconnected and `RequestEnded` when the request was cancelled.
    """
    if sink.queue.empty():
        getter: asyncio.Future[Any] = asyncio.ensure_future(sink.queue.get())
        done, _ = await asyncio.wait({getter, disconnect}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getter
            if disconnect in done:
                raise ConnectionError("client disconnected")
            return None
        item: Message | None = getter.result()
    else:
        item = sink.queue.get_nowait()
    if item is None:
        raise RequestEnded
    return item


async def pump_stream(
    receive: Receive,
    send: Send,
    backend: BackendSession,
    sink: QueueSink,
    *,
    headers: list[tuple[bytes, bytes]],
    keepalive: float,
    first_event: tuple[str, bytes] | None = None,
) -> None:
    """Relay everything delivered to `sink` as SSE `message` events until the client leaves or the session ends."""
    stream = SSEStream(send)
    disconnect = asyncio.ensure_future(wait_disconnect(receive))
    try:
        await stream.start(headers)
        if first_event is not None:
            await stream.event(first_event[1], event=first_event[0])
        while backend.alive:
            item = await next_or_disconnect(sink, disconnect, keepalive)
            if item is None:
                await stream.comment()
            else:
                await stream.event(orjson.dumps(item))
    except (ConnectionError, ClientGone, RequestEnded):
        pass
    finally:
        await backend.abandon(sink, cancel=False)
        disconnect.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await disconnect
