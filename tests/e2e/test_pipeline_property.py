"""Property: for generated JSON-RPC messages, batches and headers, every front decides alike.

The four fronts (`support.fronts`: Streamable HTTP over stdio, the reverse proxy, legacy SSE, vMCP) run as real
gateway processes with one issuer and one Cedar policy file, in front of the same fixture server. Each generated
message goes to all four; what a client observes must be the same: which JSON-RPC error it gets (or none), which
tools a list shows, and which calls reach the backend. Only what the backend itself answers to a batch may differ
(the reverse proxy hands a batch to the backend; the others answer it themselves), so a batch that the gateway lets
through is compared by that alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from support.fronts import FRONTS, Front, RawSession, open_session, start_front
from support.issuer import local_issuer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.xdist_group("pipeline_property")]

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


class Sessions(list[RawSession]):
    """One session per front (shown briefly: Hypothesis prints its arguments when a case fails)."""

    def __repr__(self) -> str:
        return f"<sessions with {', '.join(s.front.kind for s in self)}>"


@pytest.fixture(scope="module")
async def sessions(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sessions]:
    """One initialized session with each front, all as the same caller."""
    async with AsyncExitStack() as stack:
        issuer = await stack.enter_async_context(local_issuer())
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        opened = Sessions()
        for kind in FRONTS:
            front: Front = await stack.enter_async_context(
                start_front(kind, tmp_path_factory.mktemp(kind), issuer, POLICIES)
            )
            opened.append(await stack.enter_async_context(open_session(front, http, front.token())))
        yield opened
        for session in opened:
            stderr = session.front.stderr()
            assert "Traceback" not in stderr, stderr[stderr.index("Traceback") - 300 :]


# -- what is generated -------------------------------------------------------------------------------------------------

MISSING = object()
ids = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=6),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.just(MISSING),
)
values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.none(),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=3), max_size=2),
)
calls = st.one_of(
    st.fixed_dictionaries({"name": st.just("calculator"), "arguments": st.fixed_dictionaries(
        {"operation": st.just("add"), "a": values, "b": values})}),
    st.fixed_dictionaries({"name": st.sampled_from(["echo", "weather"]), "arguments": st.fixed_dictionaries(
        {"text": values})}),
    st.fixed_dictionaries({"name": st.sampled_from(["admin_tool", "delete_namespace", "no_such_tool", ""]),
                           "arguments": st.just({})}),
    st.fixed_dictionaries({"name": values}),
)  # fmt: skip
methods_and_params = st.one_of(
    st.tuples(st.just("tools/call"), calls),
    st.tuples(st.sampled_from(["tools/list", "prompts/list", "ping"]), st.just(MISSING)),
    st.tuples(st.just("prompts/get"), st.fixed_dictionaries({"name": st.sampled_from(["review", "secret"])})),
    st.tuples(st.sampled_from(["notifications/cancelled", "no/such/method"]), st.just(MISSING)),
)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    method, params = draw(methods_and_params)
    message: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.0", "2.0", "2.0", "1.0"])), "method": method}
    ident = draw(ids)
    if ident is not MISSING:
        message["id"] = ident
    if params is not MISSING:
        message["params"] = params
    return message


bodies = st.one_of(messages(), st.lists(messages(), min_size=1, max_size=3))
versions = st.sampled_from(["2025-06-18", "2025-06-18", "2025-03-26", "1999-01-01", None])


# -- what a client observes --------------------------------------------------------------------------------------------


def outcome(message: Any) -> Any:
    """The part of a JSON-RPC answer the gateway decides: an error code, or the names a list shows (for a batch,
    each answer's, by id)."""
    if isinstance(message, list):
        return sorted((repr(m.get("id")), outcome(m)) for m in message if isinstance(m, dict))
    if not isinstance(message, dict):
        return message
    if "error" in message:
        return ("error", message["error"].get("code"))
    result = message.get("result")
    if isinstance(result, dict) and isinstance(result.get("tools"), list):
        return ("tools", sorted(t["name"] for t in result["tools"]))
    if isinstance(result, dict) and isinstance(result.get("prompts"), list):
        return ("prompts", sorted(p["name"] for p in result["prompts"]))
    return ("result",)


async def observe(session: RawSession, body: Any, version: str | None) -> tuple[Any, ...]:
    before = len(session.front.calls())
    answer = await session.request(body, headers={"mcp-protocol-version": version})
    reached = session.front.calls()[before:]
    if isinstance(body, list):
        # The gateway refuses a batch with 403 (a request not allowed: every refusal listed) or 400 with -32700 or
        # -32600 (malformed); a batch it lets through is answered by the backend, which differs by front: the
        # stdio and vMCP fronts answer batches themselves, the reverse proxy hands them to the fixture, whose SDK
        # answers any batch with -32602.
        error = answer.message.get("error", {}).get("code") if isinstance(answer.message, dict) else None
        if answer.status == 403 or (answer.status == 400 and error in (-32700, -32600)):
            return ("batch", outcome(answer.message), reached)
        return ("batch", "passed")
    # the HTTP status is not compared: legacy SSE answers every POST 202 and delivers the answer on its stream
    return ("message", outcome(answer.message), reached)


async def test_the_legacy_sse_transport_refuses_every_batch(sessions: Sessions) -> None:
    (sse,) = [s for s in sessions if s.front.kind == "sse"]
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]
    for version in (None, "2025-03-26"):
        answer = await sse.request(batch, headers={"mcp-protocol-version": version})
        assert answer.status == 400
        assert answer.message["error"] == {
            "code": -32600,
            "message": "Invalid Request: MCP revision 2024-11-05 has no batches",
        }


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run: a CI failure reproduces locally
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, version=versions)
async def test_every_front_decides_alike(sessions: Sessions, body: Any, version: str | None) -> None:
    # the legacy SSE transport (revision 2024-11-05) carries no batches: it refuses every one, which is tested apart
    carriers = [s for s in sessions if not (isinstance(body, list) and s.front.kind == "sse")]
    seen = {session.front.kind: await observe(session, body, version) for session in carriers}
    assert len(set(map(repr, seen.values()))) == 1, seen
    event(repr(next(iter(seen.values())))[:60])  # what was decided (shown by --hypothesis-show-statistics)
