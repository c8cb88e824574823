"""Pipeline stage "parse and validate": one POST body → the JSON-RPC messages it carries, or why it is refused.

JSON-RPC 2.0 (jsonrpc.org/specification) as MCP uses it (spec 2025-06-18, "Base Protocol"). Checks run cheapest
first, and nothing recursive runs before the depth is known to be bounded:

1. JSON (orjson, which itself stops at 1,024 levels without recursing in Python);
2. nesting depth at most `MAX_DEPTH` (64): counted without recursion, and only when the body has more than 64
   opening brackets at all (almost never), so a body nested 100,000 deep is refused, never a `RecursionError`;
3. no object with a key twice, on every front: parsers disagree on which value wins, so a backend reading the
   forwarded bytes could act on a value the policies never saw (the standard library parser finds it, ~5 µs);
4. the JSON-RPC shape of every message; a batch (revision 2025-03-26) is not empty, holds no `initialize`, and no
   two of its requests share an id (an answer must name exactly one request, or it could be filtered as another's);
5. a message without `id` is a notification (`notifications/*`) or a response to a server request, nothing else:
   `tools/call` without an id would reach the backend without ever being authorized.

The size limit is the body reader's (`asgi.http.read_body`), applied before any of this.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from hivegate.core import jsonrpc
from hivegate.core.jsonrpc import Message, RequestId
from hivegate.core.protocol import BATCH_VERSIONS
from hivegate.errors import InvalidMessage

__all__ = ["MAX_DEPTH", "Inbound", "depth_exceeds", "parse_body"]

MAX_DEPTH: Final = 64


@dataclass(frozen=True, slots=True)
class Inbound:
    """A valid POST body: its messages in order, whether it was a batch, and the bytes as received (a front that
    forwards bytes forwards exactly these: they decode to `messages` and no key in them is ambiguous)."""

    messages: tuple[Message, ...]
    batch: bool
    body: bytes

    @property
    def requests(self) -> list[Message]:
        """The messages that expect an answer."""
        return [m for m in self.messages if "method" in m and "id" in m]

    @property
    def first_id(self) -> RequestId | None:
        """The id an error about the whole body names: the single request's, else none."""
        if self.batch or not self.messages:
            return None
        found = self.messages[0].get("id")
        return found if isinstance(found, str | int) else None


def parse_body(body: bytes, *, revision: str, max_depth: int = MAX_DEPTH) -> Inbound:
    """The messages of `body`, sent under MCP `revision`; raises `InvalidMessage` (HTTP 400, JSON-RPC -32700 or
    -32600) naming what is wrong. A batch is refused unless `revision` has batches (2025-03-26 only)."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson stops at 1,024 levels
            raise InvalidMessage(jsonrpc.INVALID_REQUEST, f"Invalid Request: nested deeper than {max_depth}") from None
        raise InvalidMessage(jsonrpc.PARSE_ERROR, "Parse error: body is not valid JSON") from None
    if _LONG_NUMBER.search(body) is not None:
        decoded = _exact(body)
    if depth_exceeds(body, decoded, max_depth):
        raise InvalidMessage(jsonrpc.INVALID_REQUEST, f"Invalid Request: nested deeper than {max_depth}")
    request_id = _id_of(decoded)
    key = _duplicate_key(body, decoded)
    if key is not None:
        raise InvalidMessage(
            jsonrpc.INVALID_REQUEST, f"Invalid Request: key {key[:64]!r} appears twice in one object", request_id
        )
    if isinstance(decoded, list):
        messages = _batch(decoded)
        if revision not in BATCH_VERSIONS:
            raise InvalidMessage(
                jsonrpc.INVALID_REQUEST, f"Invalid Request: MCP revision {revision[:40]} has no batches"
            )
        return Inbound(messages, True, body)
    _check_one(decoded)
    return Inbound((decoded,), False, body)


# 19 digits or more: orjson turns an integer outside [-2**63, 2**64) into a float (-9223372036854775809 becomes
# -9.223372036854776e+18), so the policies would see another number than the server; the stdlib parser keeps it
_LONG_NUMBER = re.compile(rb"(?<![0-9.eE+-])-?[0-9]{19,}(?![0-9.eE])")


def _exact(body: bytes) -> Any:
    """`body` decoded by the stdlib parser, whose integers have no size limit (only bodies with long numbers)."""
    try:
        return json.loads(body)
    except ValueError:  # orjson took it (e.g. a lone surrogate escape): refuse rather than guess the number
        raise InvalidMessage(jsonrpc.PARSE_ERROR, "Parse error: a number too long to read exactly") from None


def depth_exceeds(body: bytes, decoded: Any, limit: int) -> bool:
    """Whether `decoded` (the JSON of `body`) nests objects and arrays more than `limit` deep. Fast path: a body with
    at most `limit` opening brackets (strings included) cannot; otherwise a walk with an explicit stack."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    stack: list[tuple[Any, int]] = [(decoded, 1)] if isinstance(decoded, dict | list) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return obj


_KEY_END = re.compile(rb'"\s*:')  # the closing quote of every key; also a `":` inside a string, which only adds


def _keys_in(decoded: Any) -> int:
    """How many keys the objects of `decoded` hold (a key given twice in the text counts once here)."""
    count, stack = 0, [decoded]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            count += len(value)
            stack.extend(v for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend(v for v in value if isinstance(v, dict | list))
    return count


def _duplicate_key(body: bytes, decoded: Any) -> str | None:
    """A key some object of the (valid, depth-checked) JSON `body`, decoded as `decoded`, has twice, or None.

    Fast path (~2 µs instead of ~5): the text has at least as many `"…":` as keys, and exactly as many when no key
    repeats and no string holds `":`; so when the count equals the decoded objects' keys, none repeats. Otherwise
    the stdlib parser, which sees every pair, finds the key."""
    if b"{" not in body:
        return None
    if len(_KEY_END.findall(body)) == _keys_in(decoded):
        return None
    try:
        json.loads(body, object_pairs_hook=_unique)
    except _Duplicate as dup:
        return dup.key
    except ValueError:
        return None  # not JSON for the stdlib parser (e.g. a lone surrogate): orjson decoded it, and keys are unique
    return None


def _id_of(decoded: Any) -> RequestId | None:
    found = decoded.get("id") if isinstance(decoded, dict) else None
    return found if isinstance(found, str | int) and not isinstance(found, bool) else None


def _check_one(message: Any) -> None:
    if not jsonrpc.valid_message(message):
        raise InvalidMessage(jsonrpc.INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message", _id_of(message))
    method = message.get("method")
    if method is not None and "id" not in message and not method.startswith("notifications/"):
        raise InvalidMessage(
            jsonrpc.INVALID_REQUEST, f"Invalid Request: {method[:64]!r} needs an id (only notifications have none)"
        )


def _batch(items: list[Any]) -> tuple[Message, ...]:
    if not items:
        raise InvalidMessage(jsonrpc.INVALID_REQUEST, "Invalid Request: empty batch")
    ids: set[RequestId] = set()
    for item in items:
        _check_one(item)
        if item.get("method") == "initialize":
            raise InvalidMessage(jsonrpc.INVALID_REQUEST, "Invalid Request: initialize cannot be part of a batch")
        if "method" in item and "id" in item:
            if item["id"] in ids:
                raise InvalidMessage(
                    jsonrpc.INVALID_REQUEST, f"Invalid Request: two requests of the batch have the id {item['id']!r}"
                )
            ids.add(item["id"])
    return tuple(items)
