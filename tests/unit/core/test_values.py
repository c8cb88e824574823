"""Pure helpers: JSON-RPC shape checks, durations and sizes, origin policy, the SSE parser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hivegate.asgi.origin import OriginPolicy
from hivegate.backends.sse_parser import iter_events
from hivegate.config.durations import parse_duration, parse_size
from hivegate.core.jsonrpc import valid_message


@pytest.mark.parametrize(
    ("message", "ok"),
    [
        ({"jsonrpc": "2.0", "id": 1, "method": "ping"}, True),
        ({"jsonrpc": "2.0", "method": "notifications/initialized"}, True),
        ({"jsonrpc": "2.0", "id": "a", "result": {}}, True),
        ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, False),
        ({"jsonrpc": "2.0", "id": True, "method": "ping"}, False),
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, False),
        ({"jsonrpc": "2.0", "id": 1, "method": "x", "params": "str"}, False),
        ({"jsonrpc": "2.0", "id": 1}, False),
        ([], False),
    ],
)
def test_valid_message(message: object, ok: bool) -> None:
    assert valid_message(message) is ok


def test_durations_and_sizes() -> None:
    assert parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    assert parse_duration("0") == 0
    with pytest.raises(ValueError, match=r"^invalid duration '42': give a unit \(e.g. 42s, 42m\)$"):
        parse_duration("42")
    assert parse_size("4MiB") == 4 * 1024 * 1024
    assert parse_size("512kb") == 512_000
    with pytest.raises(ValueError, match="soon"):
        parse_duration("soon")
    with pytest.raises(ValueError, match="lots"):
        parse_size("lots")


def test_origin_policy() -> None:
    local = OriginPolicy((), loopback_only=True)
    assert local.host_ok("127.0.0.1:8080")
    assert local.host_ok("localhost")
    assert local.host_ok("[::1]:9000")
    assert not local.host_ok("evil.example:8080")
    assert local.origin_ok(None, "127.0.0.1:1")
    assert local.origin_ok("http://localhost:6274", "127.0.0.1:1")
    assert not local.origin_ok("https://evil.example", "127.0.0.1:1")
    configured = OriginPolicy(["https://app.example.com"], loopback_only=False)
    assert configured.origin_ok("https://app.example.com", "gw.example.com")
    assert not configured.origin_ok("http://localhost:3000", "gw.example.com")
    assert configured.host_ok("anything.example")


@pytest.mark.anyio
async def test_sse_parser() -> None:
    async def lines() -> AsyncIterator[bytes]:
        for line in [b": comment\n", b"event: endpoint\n", b"data: /messages?x=1\n", b"\n", b"id: 7\n",
                     b"data: {\"a\":\n", b"data: 1}\r\n", b"\n", b"data: tail\n"]:  # fmt: skip
            yield line

    events = [e async for e in iter_events(lines())]
    assert [(e.event, e.data, e.id) for e in events] == [
        ("endpoint", "/messages?x=1", None),
        ("message", '{"a":\n1}', "7"),
        ("message", "tail", "7"),
    ]


@pytest.mark.anyio
async def test_sse_parser_keeps_priming_events_and_the_retry_time() -> None:
    async def lines() -> AsyncIterator[bytes]:
        for line in [b"retry: 250\n", b"\n", b"id: p1\n", b"data: \n", b"\n", b"retry: x\n", b"data: {}\n", b"\n"]:
            yield line

    events = [e async for e in iter_events(lines())]
    assert [(e.data, e.id, e.retry) for e in events] == [("", "p1", 250), ("{}", "p1", 250)]
