"""A key twice in one object is found at any depth; a body without one passes."""

from __future__ import annotations

import pytest

from hivegate.core.jsonrpc import duplicate_key


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}', None),
        (b'{"id":1,"id":2}', "id"),
        (b'{"params":{"arguments":{"path":"/tmp","path":"/etc"}}}', "path"),
        (b'[{"a":1},{"b":1,"b":2}]', "b"),
        (b'{"a":{"x":1},"b":{"x":1}}', None),  # the same key in two objects is fine
    ],
)
def test_duplicate_key(body: bytes, key: str | None) -> None:
    assert duplicate_key(body) == key
