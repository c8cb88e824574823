"""Headers that name state (a session, a stream, a credential) may appear once per request."""

from __future__ import annotations

import pytest

from hivegate.pipeline.headers import repeated_header


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        (b"mcp-session-id", "Mcp-Session-Id"),
        (b"mcp-protocol-version", "MCP-Protocol-Version"),
        (b"last-event-id", "Last-Event-ID"),
        (b"authorization", "Authorization"),
    ],
)
def test_a_repeated_state_header_is_refused_naming_it(name: bytes, shown: str) -> None:
    problem = repeated_header([(b"accept", b"*/*"), (name, b"a"), (b"content-type", b"x"), (name, b"b")])
    assert problem is not None
    assert problem.status == 400
    assert problem.answer()["error"] == {"code": -32600, "message": f"Bad Request: more than one {shown} header"}


def test_other_headers_may_repeat_and_each_state_header_may_appear_once() -> None:
    headers = [(b"accept", b"a"), (b"accept", b"b"), (b"mcp-session-id", b"s"), (b"last-event-id", b"1")]
    assert repeated_header(headers) is None
