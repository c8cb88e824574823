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


async def iter_events(lines: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]:
    """Turn the lines of an SSE body into events; comments and unknown fields are ignored."""
    event, event_id = "message", None
    data: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield ServerSentEvent(event=event, data="\n".join(data), id=event_id)
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
        elif name == "id":
            event_id = value
    if data:
        yield ServerSentEvent(event=event, data="\n".join(data), id=event_id)
