"""Rewrite a relayed `text/event-stream` event by event, leaving the rest as sent.

Used by the reverse proxy on every stream it relays: the JSON-RPC message in an event's `data` goes through the
answer filter (lists cut down to what the caller may use), and its `id:` is sealed to the caller's session
(`pipeline.events`). Every other byte (comments, `event:` and `retry:` lines, events it does not rewrite) passes
through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson

from hivegate.core.jsonrpc import Message
from hivegate.pipeline.answers import might_carry_list

__all__ = ["EventRewriter"]

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")
_MAX_PENDING = 16 * 1024 * 1024


class EventRewriter:
    """Feed chunks, get bytes to send: complete events, their `data` rewritten by `rewrite` and their `id` by
    `event_id` (either may be None).

    `rewrite` gets each event's decoded JSON object and returns it (unchanged or not); an event whose data is not a
    JSON object, or cannot hold a list answer, passes as is. An incomplete event is held until its end arrives (at
    most 16 MiB).
    """

    def __init__(
        self, rewrite: Callable[[Message], Message] | None, event_id: Callable[[str], str] | None = None
    ) -> None:
        self._rewrite = rewrite
        self._event_id = event_id
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self._pending and chunk.endswith((b"\n\n", b"\r\r", b"\r\n\r\n")) and self._untouched(chunk):
            return chunk  # whole events with nothing to rewrite: the common case, passed without parsing
        data = self._pending + chunk
        out: list[bytes] = []
        start = 0
        for match in _EVENT_END.finditer(data):
            out.append(self._event(data[start : match.start()]) + match.group())
            start = match.end()
        self._pending = data[start:]
        if len(self._pending) > _MAX_PENDING:
            raise ValueError("event larger than 16 MiB")
        return b"".join(out)

    def _untouched(self, chunk: bytes) -> bool:
        """Whether nothing in `chunk` (whole events) could be rewritten: no id to seal, no list to filter."""
        if self._event_id is not None and b"id:" in chunk:
            return False
        return self._rewrite is None or not might_carry_list(chunk)

    def flush(self) -> bytes:
        """Whatever is left when the stream ends (an event without its final blank line)."""
        rest, self._pending = self._pending, b""
        return self._event(rest) if rest else b""

    def _event(self, block: bytes) -> bytes:
        if self._event_id is not None and b"id:" in block:
            block = self._seal(block)
        if self._rewrite is None or b"data:" not in block:
            return block
        lines = _LINE.split(block)
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        joined = b"\n".join(data)
        if not might_carry_list(joined):
            return block
        try:
            message = orjson.loads(joined)
        except orjson.JSONDecodeError:
            return block
        if not isinstance(message, dict):
            return block
        rewritten = self._rewrite(message)
        if rewritten is message:
            return block
        kept = [line for line in lines if not line.startswith(b"data:")]
        return b"\n".join([*kept, b"data: " + orjson.dumps(rewritten)])

    def _seal(self, block: bytes) -> bytes:
        assert self._event_id is not None
        lines = _LINE.split(block)
        for i, line in enumerate(lines):
            if line.startswith(b"id:"):
                original = line[3:].removeprefix(b" ").decode("utf-8", "replace")
                lines[i] = b"id: " + self._event_id(original).encode()
        return b"\n".join(lines)
