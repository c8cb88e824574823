"""W3C Trace Context (Level 1) §3.2 `traceparent` and §3.3 `tracestate`: reading a caller's, writing the gateway's.

A caller's trace context comes in the HTTP headers or, per call, in the JSON-RPC request's `params._meta` (MCP
SEP-414 reserves `_meta.traceparent` and `_meta.tracestate`); the `_meta` one wins for its call. A value that does
not parse (wrong length, upper-case or non-hex digits, version `ff`, an all-zero id) is ignored, never an error,
and is never logged. Pure: no OpenTelemetry import, so the gateway pays nothing for this module when it does not
trace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["RemoteParent", "format_traceparent", "incoming_parent", "parse_traceparent", "valid_tracestate"]

_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)
# §3.3.1.3: list-member = key "=" value, the same patterns as the OpenTelemetry API's (so it never warns about them)
_KEY: Final = r"(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"
_VALUE: Final = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER: Final = re.compile(rf"[ \t]*({_KEY})=({_VALUE})[ \t]*")
_TRACESTATE_MAX: Final = 512  # characters: §3.3.1.5 lets a vendor drop a longer one
_MEMBERS_MAX: Final = 32


@dataclass(frozen=True, slots=True)
class RemoteParent:
    """The caller's span, named by a valid `traceparent`, with its `tracestate` when that was valid too."""

    trace_id: int
    span_id: int
    sampled: bool
    tracestate: tuple[tuple[str, str], ...] = ()


def parse_traceparent(value: object) -> tuple[int, int, bool] | None:
    """(trace id, parent span id, sampled) of a `traceparent` value (§3.2.2), or None when it is not valid."""
    if not isinstance(value, str) or len(value) > 512:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace, span, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):  # a later version may append fields
        return None
    trace_id, span_id = int(trace, 16), int(span, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def valid_tracestate(value: object) -> tuple[tuple[str, str], ...] | None:
    """The (key, value) members of a `tracestate` value (§3.3.1), or None when it does not parse (then it is not
    passed on). An empty value has no members."""
    if not isinstance(value, str) or len(value) > _TRACESTATE_MAX:
        return None
    members: list[tuple[str, str]] = []
    for item in value.split(","):
        if not item.strip(" \t"):
            continue  # empty list-members are allowed
        match = _MEMBER.fullmatch(item)
        if match is None:
            return None
        members.append((match.group(1), match.group(2)))
    if len(members) > _MEMBERS_MAX or len({key for key, _ in members}) != len(members):
        return None
    return tuple(members)


def incoming_parent(params: Any, traceparent: str | None, tracestate: str | None) -> RemoteParent | None:
    """The caller's span for one call: its `params._meta.traceparent` if valid, else the HTTP headers' if valid."""
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    if isinstance(meta, Mapping) and (parent := _parent(meta.get("traceparent"), meta.get("tracestate"))):
        return parent
    return _parent(traceparent, tracestate) if traceparent is not None else None


def format_traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    """A version-00 `traceparent` value naming `span_id` as the parent."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def _parent(traceparent: object, tracestate: object) -> RemoteParent | None:
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    members = valid_tracestate(tracestate) if tracestate is not None else None
    return RemoteParent(*parsed, members or ())
