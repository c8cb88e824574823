"""The parse-and-validate stage: what a client may send, and the one-line error for what it may not."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hivegate.errors import InvalidMessage
from hivegate.pipeline.messages import MAX_DEPTH, Inbound, parse_body


def parse(body: bytes, revision: str = "2025-03-26") -> Inbound:
    return parse_body(body, revision=revision)


def refused(body: bytes, revision: str = "2025-03-26") -> InvalidMessage:
    with pytest.raises(InvalidMessage) as info:
        parse(body, revision)
    assert info.value.status == 400
    return info.value


def nested(depth: int) -> bytes:
    """A tools/call whose arguments nest `depth` levels in all (the message itself counts as one)."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    return f'{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{inner}}}}}'.encode()


def test_a_request_a_notification_and_a_response_are_accepted() -> None:
    inbound = parse(b'{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"a"}}')
    assert not inbound.batch
    assert inbound.first_id == "x"
    assert [m["method"] for m in inbound.requests] == ["tools/call"]
    assert parse(b'{"jsonrpc":"2.0","method":"notifications/initialized"}').requests == []
    assert parse(b'{"jsonrpc":"2.0","id":7,"result":{}}').requests == []


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}', "id"),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"path":"/tmp","path":"/etc"}}}',
            "path",
        ),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping","method":"x"}]', "method"),
    ],
)
def test_a_key_twice_in_one_object_is_refused_at_any_depth(body: bytes, key: str) -> None:
    error = refused(body)
    assert error.code == -32600
    assert error.message == f"Invalid Request: key {key!r} appears twice in one object"


def test_the_same_key_in_two_objects_is_fine() -> None:
    parse(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"a":{"x":1},"b":{"x":1}}}}')


def test_nesting_up_to_the_limit_passes_and_one_more_is_refused() -> None:
    parse(nested(MAX_DEPTH))
    error = refused(nested(MAX_DEPTH + 1))
    assert (error.code, error.message) == (-32600, f"Invalid Request: nested deeper than {MAX_DEPTH}")


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_absurd_nesting_is_a_clear_error_never_a_recursion_error(depth: int) -> None:
    error = refused(
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":' + b"[" * depth + b"]" * depth + b"}}"
    )
    assert error.message == f"Invalid Request: nested deeper than {MAX_DEPTH}"


def test_many_brackets_inside_strings_are_not_nesting() -> None:
    text = "[" * 500
    parse(
        orjson.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a", "arguments": {"t": text}}}
        )
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"admin_tool"}}',
        b'{"jsonrpc":"2.0","method":"prompts/get","params":{"name":"secret"}}',
        b'[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"admin_tool"}}]',
    ],
)
def test_a_request_without_an_id_is_refused_it_would_never_be_authorized(body: bytes) -> None:
    error = refused(body)
    assert error.code == -32600
    assert "needs an id (only notifications have none)" in error.message


def test_a_batch_where_two_requests_share_an_id_is_refused() -> None:
    body = b'[{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","id":7,"method":"prompts/list"}]'
    error = refused(body)
    assert (error.code, error.message) == (-32600, "Invalid Request: two requests of the batch have the id 7")


def test_a_batch_may_answer_the_server_with_an_id_a_request_also_uses() -> None:
    inbound = parse(b'[{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","id":7,"result":{}}]')
    assert inbound.batch
    assert len(inbound.messages) == 2
    assert inbound.first_id is None


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"{not json", -32700, "Parse error: body is not valid JSON"),
        (b"[]", -32600, "Invalid Request: empty batch"),
        (b'{"jsonrpc":"1.0","method":"ping"}', -32600, "Invalid Request: not a JSON-RPC 2.0 message"),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', -32600, "Invalid Request: not a JSON-RPC 2.0 message"),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600, "Invalid Request: not a JSON-RPC 2.0 message"),
        (b"[1]", -32600, "Invalid Request: not a JSON-RPC 2.0 message"),
        (
            b'[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]',
            -32600,
            "Invalid Request: initialize cannot be part of a batch",
        ),
    ],
)
def test_malformed_bodies_get_the_json_rpc_code_that_names_the_problem(body: bytes, code: int, message: str) -> None:
    error = refused(body)
    assert (error.code, error.message) == (code, message)
    assert error.answer() == {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}


def test_an_invalid_single_request_names_its_id() -> None:
    assert refused(b'{"jsonrpc":"2.0","id":5,"method":3}').answer()["id"] == 5
    assert refused(b'{"id":6,"method":"ping"}').answer()["id"] == 6


@pytest.mark.parametrize("revision", ["2024-11-05", "2025-06-18", "2025-11-25", "2026-07-28"])
def test_a_batch_is_refused_under_a_revision_without_batches(revision: str) -> None:
    error = refused(b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', revision)
    assert error.answer()["error"] == {
        "code": -32600,
        "message": f"Invalid Request: MCP revision {revision} has no batches",
    }


def test_a_batch_is_accepted_under_2025_03_26() -> None:
    assert parse(b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', "2025-03-26").batch


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":1, "a" :2}}',  # a space before the colon
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"s":"x\\":y","a":1,"a":2}}',  # a string holding ":
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"l":[{"k":1},{"k":1,"k":2}]}}',  # in an array
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":1},"params":{"b":2}}',  # at the top
    ],
)
def test_a_repeated_key_is_found_however_the_text_is_laid_out(body: bytes) -> None:
    assert "appears twice" in refused(body).message


def test_strings_that_look_like_keys_are_not_repeated_keys() -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\\"a\\":1","b":"a\\":"}}'
    assert parse(body).messages[0]["params"]["a"] == '"a":1'


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers() | st.text(alphabet='a":{ ', max_size=4)),
    st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]),
    st.booleans(),
)
def test_the_fast_duplicate_check_agrees_with_a_full_parse(
    params: dict[str, object], seps: tuple[str, str], twice: bool
) -> None:
    inner = json.dumps(params, separators=seps)
    if twice and params:
        key = next(iter(params))
        inner = inner[:-1] + f'{seps[0]}"{key}"{seps[1]}0' + "}"
    body = ('{"jsonrpc":"2.0","id":1,"method":"ping","params":' + inner + "}").encode()
    if twice and params:
        assert "appears twice" in refused(body).message
    else:
        assert parse(body).messages[0]["params"] == params


@pytest.mark.parametrize("number", [-9223372036854775809, 18446744073709551616, 10**40, -(10**30)])
def test_an_integer_beyond_64_bits_is_read_exactly(number: int) -> None:
    body = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","arguments":{"amount":'
            f'{number},"memo":"1234567890123456789012","ratio":0.12345678901234567890123}}}}}}').encode()  # fmt: skip
    arguments = parse(body).messages[0]["params"]["arguments"]
    assert arguments["amount"] == number  # the policies see the number the server gets
    assert isinstance(arguments["amount"], int)
    assert (arguments["memo"], arguments["ratio"]) == ("1234567890123456789012", 0.12345678901234568)
