"""The security review's findings, each tried as the attacker did, against a real gateway on every front it applies
to: Streamable HTTP over a stdio server, the reverse proxy, legacy SSE and vMCP (`support.fronts`). Every front must
decide alike: what one refuses, all refuse, with the same JSON-RPC error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from support.fronts import FRONTS, Answer, Front, FrontKind, open_session, start_front
from support.issuer import local_issuer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.xdist_group("pipeline_findings")]

POLICIES = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"weather");',
    'permit(principal, action == Action::"call_tool", resource == Tool::"echo");',
    'permit(principal, action == Action::"call_tool", resource == Tool::"calculator");',
    'forbid(principal, action == Action::"call_tool", resource == Tool::"calculator") when { resource.arg_a > 100 };',
    'permit(principal, action == Action::"get_prompt", resource == Prompt::"review");',
]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=FRONTS)
async def front(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Front]:
    kind: FrontKind = request.param
    async with local_issuer() as issuer, start_front(kind, tmp_path_factory.mktemp(kind), issuer, POLICIES) as started:
        yield started
        assert "Traceback" not in started.stderr()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def error_of(answer: Answer) -> tuple[int, int, str]:
    message: Any = answer.message
    assert isinstance(message, dict), message
    return answer.status, message["error"]["code"], message["error"]["message"]


def calculator(a: Any) -> dict[str, Any]:
    return {"name": "calculator", "arguments": {"operation": "add", "a": a, "b": 1}}


# -- 1. two Mcp-Session-Id headers -------------------------------------------------------------------------------------


async def test_a_second_session_header_is_refused_and_never_reaches_anothers_session(
    front: Front, http: httpx.AsyncClient
) -> None:
    if front.kind == "sse":
        pytest.skip("the legacy transport names its session in the query string, not in a header")
    async with (
        open_session(front, http, front.token("alice")) as alice,
        open_session(front, http, front.token("bob")) as bob,
    ):
        assert alice.session_id is not None
        assert bob.session_id is not None
        both = [("mcp-session-id", alice.session_id), ("mcp-session-id", bob.session_id)]
        headers = [(k, v) for k, v in bob.headers().items() if k != "mcp-session-id"] + both
        call = bob.rpc("tools/call", {"name": "weather", "arguments": {}})
        resp = await http.post(front.url, json=call, headers=headers)
        assert resp.status_code == 400
        assert resp.json()["error"] == {"code": -32600, "message": "Bad Request: more than one Mcp-Session-Id header"}
        ended = await http.delete(front.url, headers=headers)
        assert ended.status_code == 400
        # alice's session is untouched: it still answers her
        answer = await alice.request(alice.rpc("tools/call", {"name": "weather", "arguments": {}}))
        assert answer.status == 200
        assert answer.message["result"]["content"][0]["text"] == "sunny in Berlin"


# -- 2. a batch whose requests share an id -----------------------------------------------------------------------------


async def test_a_batch_reusing_an_id_is_refused_whole(front: Front, http: httpx.AsyncClient) -> None:
    async with open_session(front, http, front.token()) as session:
        batch = [
            {"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 7, "method": "prompts/list"},
        ]
        answer = await session.request(batch)
        assert error_of(answer) == (400, -32600, "Invalid Request: two requests of the batch have the id 7")


# -- 3. a forbid guard erroring on an argument of another type ---------------------------------------------------------


@pytest.mark.parametrize("a", [2**64, 500.0, "500", 101], ids=["beyond-long", "float", "string", "long"])
async def test_a_forbid_cannot_be_skipped_by_the_type_of_an_argument(
    front: Front, http: httpx.AsyncClient, a: Any
) -> None:
    async with open_session(front, http, front.token()) as session:
        before = front.calls()
        answer = await session.request(session.rpc("tools/call", calculator(a)))
        assert answer.message["error"]["code"] == 403, answer.message
        assert front.calls() == before  # never reached the backend


async def test_the_guarded_tool_still_answers_within_the_guard(front: Front, http: httpx.AsyncClient) -> None:
    async with open_session(front, http, front.token()) as session:
        answer = await session.request(session.rpc("tools/call", calculator(41)))
        assert answer.message["result"]["content"][0]["text"] == "42"


# -- 4. a request sent as a notification -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["tools/call", "prompts/get"])
async def test_a_request_without_an_id_is_refused_never_forwarded(
    front: Front, http: httpx.AsyncClient, method: str
) -> None:
    async with open_session(front, http, front.token()) as session:
        before = front.calls()
        note = {"jsonrpc": "2.0", "method": method, "params": {"name": "admin_tool", "arguments": {}}}
        answer = await session.request(note)
        assert error_of(answer) == (
            400,
            -32600,
            f"Invalid Request: {method!r} needs an id (only notifications have none)",
        )
        assert front.calls() == before


# -- 6. deep nesting ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 300, 1_000, 50_000])
async def test_deep_nesting_is_a_clear_400_never_a_500(front: Front, http: httpx.AsyncClient, depth: int) -> None:
    async with open_session(front, http, front.token()) as session:
        body = (
            b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"text":'
            + b"[" * depth
            + b"]" * depth
            + b"}}}"
        )
        answer = await session.request(body)
        assert error_of(answer)[:2] == (400, -32600)
        assert answer.message["error"]["message"] == "Invalid Request: nested deeper than 64"
        # and the session is as good as before
        echoed = await session.request(session.rpc("tools/call", {"name": "echo", "arguments": {"text": "hi"}}))
        assert echoed.message["result"]["content"][0]["text"] == "hi"
