"""Rewriting JSON-RPC messages inside a relayed event stream, however the bytes are chunked."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hivegate.asgi.sse_rewrite import EventRewriter

STREAM = (
    b": keepalive\n\n"
    b'event: message\nid: 1\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n'
    b'id: 2\ndata: {"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"a"},{"name":"b"}]}}\r\n\r\n'
    b"data: not json\n\n"
)


def only_a(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("id") != 7:
        return message
    return {**message, "result": {"tools": [t for t in message["result"]["tools"] if t["name"] == "a"]}}


def relay(chunks: list[bytes]) -> bytes:
    rewriter = EventRewriter(only_a)
    return b"".join(rewriter.feed(c) for c in chunks) + rewriter.flush()


def events(raw: bytes) -> list[list[bytes]]:
    blocks = raw.replace(b"\r\n", b"\n").split(b"\n\n")
    return [block.split(b"\n") for block in blocks if block]


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
def test_the_answer_is_rewritten_and_everything_else_passes_byte_for_byte(size: int) -> None:
    out = relay([STREAM[i : i + size] for i in range(0, len(STREAM), size)])
    parsed = events(out)
    assert parsed[0] == [b": keepalive"]
    assert parsed[1] == events(STREAM)[1]
    assert parsed[2][0] == b"id: 2"
    assert orjson.loads(parsed[2][1].removeprefix(b"data: ")) == {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {"tools": [{"name": "a"}]},
    }
    assert parsed[3] == [b"data: not json"]


def test_multi_line_data_and_a_missing_final_blank_line() -> None:
    raw = b'data: {"jsonrpc":"2.0","id":7,\ndata: "result":{"tools":[{"name":"b"}]}}'
    assert orjson.loads(relay([raw]).removeprefix(b"data: ")) == {"jsonrpc": "2.0", "id": 7, "result": {"tools": []}}


def test_an_event_too_large_to_hold_is_an_error() -> None:
    rewriter = EventRewriter(only_a)
    with pytest.raises(ValueError, match="16 MiB"):
        rewriter.feed(b"data: " + b"x" * (17 * 1024 * 1024))


@pytest.mark.parametrize("size", [1, 5, len(STREAM)])
def test_event_ids_are_sealed_and_nothing_else_changes_without_a_filter(size: int) -> None:
    rewriter = EventRewriter(None, lambda event_id: f"sealed-{event_id}")
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    out = b"".join(rewriter.feed(c) for c in chunks) + rewriter.flush()
    expected = STREAM.replace(b"id: 1\n", b"id: sealed-1\n").replace(b"id: 2\n", b"id: sealed-2\n")
    assert events(out) == events(expected)
