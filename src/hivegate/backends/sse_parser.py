"""An incremental parser for `text/event-stream` bodies (WHATWG HTML, "Server-sent events", 9.2.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["ServerSentEvent", "iter_events"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None = None
    retry: int | None = None  # the reconnection time the server asked for so far, in milliseconds


async def iter_events(lines: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]:
    """Turn the lines of an SSE body into events; comments and unknown fields are ignored.

    An event's `id` is the last event id seen so far and `retry` the last reconnection time (both carry over, as
    in a browser, even from a block that carried no data). A block with an `id` and an empty `data` field (a
    priming event) is an event with data `""`."""
    event, event_id, retry = "message", None, None
    data: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield ServerSentEvent(event=event, data="\n".join(data), id=event_id, retry=retry)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value or "message"
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    if data:
        yield ServerSentEvent(event=event, data="\n".join(data), id=event_id, retry=retry)
