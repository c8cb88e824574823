"""The security review's findings, each tried as the attacker did, against a real gateway on every front it applies
to: Streamable HTTP over a stdio server, the reverse proxy, legacy SSE and vMCP (`support.fronts`). Every front must
decide alike: what one refuses, all refuse, with the same JSON-RPC error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from aiohttp import web

from support.fronts import (
    AUDIENCE,
    FRONTS,
    INIT_PARAMS,
    Answer,
    Front,
    FrontKind,
    RawSession,
    checked_front,
    open_session,
    start_front,
)
from support.gateway import hivegate_run
from support.issuer import local_issuer
from support.webserver import serve_on_loopback

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.xdist_group("pipeline_findings")]

POLICIES = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"weather");',
    'permit(principal, action == Action::"call_tool", resource == Tool::"echo");',
    'permit(principal, action == Action::"call_tool", resource == Tool::"calculator");',
    'forbid(principal, action == Action::"call_tool", resource == Tool::"calculator") when { resource.arg_a > 100 };',
    'permit(principal, action == Action::"get_prompt", resource == Prompt::"review");',
    'permit(principal, action == Action::"call_tool", resource == Tool::"open_sockets");',
]
ALLOWED_TOOLS = {"weather", "echo", "calculator", "open_sockets"}  # what POLICIES let a caller see


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=FRONTS)
async def front(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Front]:
    kind: FrontKind = request.param
    async with checked_front(kind, tmp_path_factory.mktemp(kind), POLICIES) as started:
        yield started


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
        answer = await session.request(batch, headers={"mcp-protocol-version": "2025-03-26"})
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


# -- 2 and 8. every answer filtered by what it carries, on every stream; event ids bound to their session ------------


@pytest.fixture(scope="module")
async def resumable(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Front]:
    """The reverse proxy in front of a resumable server (an event store that trusts any event id)."""
    directory = tmp_path_factory.mktemp("resumable")
    async with (
        local_issuer() as issuer,
        start_front("remote", directory, issuer, POLICIES, http_mode="--http-resumable") as started,
    ):
        yield started
        assert "Traceback" not in started.stderr()


def events_of(body: str) -> list[tuple[str | None, Any]]:
    """(id, decoded data) of each event of an event-stream body that carries data."""
    found: list[tuple[str | None, Any]] = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        event_id = next((line[3:].strip() for line in block.split("\n") if line.startswith("id:")), None)
        data = "\n".join(line[5:].strip() for line in block.split("\n") if line.startswith("data:"))
        if data:
            found.append((event_id, json.loads(data)))
    return found


def tool_names(answer: Any) -> set[str]:
    return {tool["name"] for tool in answer["result"]["tools"]}


async def test_a_batch_answer_is_filtered_per_answer(front: Front, http: httpx.AsyncClient) -> None:
    if front.kind in ("sse", "remote"):
        pytest.skip("the gateway serves batches itself on the stdio and vMCP fronts (see below for a remote server)")
    async with open_session(front, http, front.token()) as session:
        batch = [
            {"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 8, "method": "prompts/list"},
        ]
        answer = await session.request(batch, headers={"mcp-protocol-version": "2025-03-26"})  # the revision of batches
        assert answer.status == 200
        by_id = {reply["id"]: reply for reply in answer.message}
        assert tool_names(by_id[7]) == ALLOWED_TOOLS
        assert {p["name"] for p in by_id[8]["result"]["prompts"]} == {"review"}


async def test_a_replayed_stream_is_filtered_and_only_its_own_session_may_replay_it(
    resumable: Front, http: httpx.AsyncClient
) -> None:
    async with (
        open_session(resumable, http, resumable.token("alice")) as alice,
        open_session(resumable, http, resumable.token("bob")) as bob,
    ):
        # a list request with a progress token: the server streams a progress event, then the answer
        resp = await alice.post(alice.rpc("tools/list", {"_meta": {"progressToken": "p1"}}))
        assert resp.headers["content-type"].startswith("text/event-stream")
        streamed = events_of(resp.text)
        assert [data.get("method") for _, data in streamed] == ["notifications/progress", None]
        assert tool_names(streamed[1][1]) == ALLOWED_TOOLS
        progress_id = streamed[0][0]
        assert progress_id is not None
        assert "." in progress_id  # sealed: the backend's own id behind a MAC of alice's session
        # alice resumes her own stream after the progress event: the replayed answer is filtered like the first
        with anyio.fail_after(10):
            async with http.stream("GET", resumable.url, headers=alice.headers({"last-event-id": progress_id})) as rep:
                assert rep.status_code == 200
                body = ""
                async for chunk in rep.aiter_text():
                    body += chunk
                    if any("result" in data for _, data in events_of(body)):
                        break
        replayed = [data for _, data in events_of(body) if "result" in data]
        assert tool_names(replayed[0]) == ALLOWED_TOOLS
        # bob presents alice's event id, sealed or raw, on his own session: refused, nothing replayed
        for stolen in (progress_id, progress_id.split(".", 1)[1]):
            refused = await http.get(resumable.url, headers=bob.headers({"last-event-id": stolen}))
            assert refused.status_code == 400
            assert refused.json()["error"] == {
                "code": -32600,
                "message": "Bad Request: Last-Event-ID is not one of this session's",
            }


TOOLS = [{"name": n, "inputSchema": {"type": "object"}} for n in ("weather", "echo", "admin_tool", "delete_namespace")]
PROMPTS = [{"name": n} for n in ("review", "secret_prompt")]


@asynccontextmanager
async def batch_server() -> AsyncIterator[str]:
    """A remote server of revision 2025-03-26 that answers JSON-RPC batches (the MCP SDK no longer does)."""

    def answer(message: dict[str, Any]) -> dict[str, Any]:
        results = {"tools/list": {"tools": TOOLS}, "prompts/list": {"prompts": PROMPTS}}
        result = results.get(message["method"], {"protocolVersion": "2025-03-26", "capabilities": {},
                                                  "serverInfo": {"name": "batches", "version": "1"}})  # fmt: skip
        return {"jsonrpc": "2.0", "id": message["id"], "result": result}

    async def mcp(request: web.Request) -> web.Response:
        body = await request.json()
        messages = body if isinstance(body, list) else [body]
        answers = [answer(m) for m in messages if "id" in m and "method" in m]
        if not answers:
            return web.Response(status=202)
        headers = {"mcp-session-id": "batch-session"}
        return web.json_response(answers if isinstance(body, list) else answers[0], headers=headers)

    app = web.Application()
    app.router.add_post("/mcp", mcp)
    async with serve_on_loopback(app) as base:
        yield f"{base}/mcp"


async def test_the_reverse_proxy_filters_each_answer_of_a_batch_by_what_it_carries(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    async with local_issuer() as issuer, batch_server() as url:
        authz = tmp_path / "authz.json"
        doc = {"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES, "entities_json": "[]"}}
        authz.write_text(json.dumps(doc))
        args = ["--oidc-issuer", issuer.url, "--oidc-audience", AUDIENCE, "--oidc-jwks-url", issuer.jwks_url,
                "--oidc-insecure-allow-http", "--jwks-allow-private-ip", "--authz-config", str(authz), url]  # fmt: skip
        async with hivegate_run(args) as gateway:
            headers = {"authorization": f"Bearer {issuer.token(AUDIENCE)}", "accept": "application/json",
                       "mcp-protocol-version": "2025-03-26", "mcp-session-id": "batch-session"}  # fmt: skip
            # the review's attack: one id for two lists, so the tools answer would be filtered as prompts
            same_id = [{"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
                       {"jsonrpc": "2.0", "id": 7, "method": "prompts/list"}]  # fmt: skip
            refused = await http.post(gateway.url, json=same_id, headers=headers)
            assert refused.status_code == 400
            # with ids told apart, each answer shows only what the caller may use
            batch = [{"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
                     {"jsonrpc": "2.0", "id": 8, "method": "prompts/list"}]  # fmt: skip
            resp = await http.post(gateway.url, json=batch, headers=headers)
            assert resp.status_code == 200, resp.text
            by_id = {reply["id"]: reply for reply in resp.json()}
            assert tool_names(by_id[7]) == {"weather", "echo"}
            assert [p["name"] for p in by_id[8]["result"]["prompts"]] == ["review"]
            assert "Traceback" not in "\n".join(gateway.stderr)


# -- 5. one caller cannot take service from another --------------------------------------------------------------------

SLOW = [*POLICIES, 'permit(principal, action == Action::"call_tool", resource == Tool::"slow");']
TIGHT = ["--max-requests-per-user", "2", "--max-streams-per-user", "2", "--max-sessions-per-user", "3",
         "--stream-idle-timeout", "2s"]  # fmt: skip


@pytest.mark.parametrize("kind", ["stdio", "remote", "sse"])
async def test_a_caller_at_its_limits_is_refused_while_another_is_served(
    kind: FrontKind, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    async with local_issuer() as issuer, start_front(kind, tmp_path, issuer, SLOW, extra=TIGHT) as gateway:
        mallory, alice = gateway.token("mallory"), gateway.token("alice")
        async with AsyncExitStack() as stack:
            first = await stack.enter_async_context(open_session(gateway, http, mallory))
            # requests in flight: two slow calls hold mallory's two slots; a third is refused at once
            nap = {"name": "slow", "arguments": {"seconds": 3}}
            slow = [asyncio.ensure_future(first.request(first.rpc("tools/call", nap))) for _ in range(2)]
            await wait_for(lambda: len(gateway_calls(gateway, "slow")) == 2)
            third = await first.post(first.rpc("tools/call", {"name": "slow", "arguments": {"seconds": 0}}))
            assert third.status_code == 429
            assert third.headers["retry-after"] == "1"
            assert third.json()["error"]["message"] == "too many requests in flight for this caller (limit 2)"
            # alice is served meanwhile
            async with open_session(gateway, http, alice) as hers:
                answer = await hers.request(hers.rpc("tools/call", {"name": "weather", "arguments": {}}))
                assert answer.message["result"]["content"][0]["text"] == "sunny in Berlin"
            await asyncio.gather(*slow)
        if kind == "sse":
            # streams: each legacy session is a stream; a third is refused
            async with open_session(gateway, http, mallory), open_session(gateway, http, mallory):
                refused = await http.get(gateway.url, headers={"authorization": f"Bearer {mallory}"})
                assert refused.status_code == 429
                assert refused.json()["error"]["message"] == "too many open streams for this caller (limit 2)"
                async with open_session(gateway, http, alice) as hers:
                    answer = await hers.request(hers.rpc("tools/call", {"name": "echo", "arguments": {"text": "hi"}}))
                    assert answer.message["result"]["content"][0]["text"] == "hi"
            return
        # sessions: a fourth of mallory's ends her oldest, never alice's
        async with open_session(gateway, http, alice) as hers:
            sessions = [await stack_session(gateway, http, mallory) for _ in range(4)]
            oldest = await http.post(gateway.url, json={"jsonrpc": "2.0", "id": 5, "method": "ping"},
                                     headers=sessions[0].headers())  # fmt: skip
            assert oldest.status_code == 404
            assert (await hers.request(hers.rpc("ping"))).status == 200
            # streams: two GET streams per caller; a third is refused, alice opens hers
            async with AsyncExitStack() as streams:
                for session in sessions[1:3]:
                    opened = await streams.enter_async_context(
                        http.stream("GET", gateway.url, headers=session.headers())
                    )
                    assert opened.status_code == 200
                refused = await http.get(gateway.url, headers=sessions[3].headers())
                assert refused.status_code == 429
                assert refused.json()["error"]["message"] == "too many open streams for this caller (limit 2)"
                async with http.stream("GET", gateway.url, headers=hers.headers()) as own:
                    assert own.status_code == 200
            # the closed streams' slots come back once the gateway sees them go, and an idle stream ends by
            # itself (--stream-idle-timeout 2s)
            with anyio.fail_after(15):
                while True:
                    async with http.stream("GET", gateway.url, headers=sessions[3].headers()) as idle:
                        if idle.status_code == 429:
                            await asyncio.sleep(0.05)
                            continue
                        assert idle.status_code == 200
                        async for _ in idle.aiter_bytes():
                            pass
                        break


def gateway_calls(front: Front, name: str) -> list[tuple[str, str]]:
    return [call for call in front.calls() if call == ("tools/call", name)]


async def wait_for(condition: Callable[[], bool], deadline: float = 15) -> None:
    with anyio.fail_after(deadline):
        while not condition():
            await asyncio.sleep(0.02)


async def stack_session(front: Front, http: httpx.AsyncClient, token: str) -> RawSession:
    """An initialized streamable session left open (the gateway or its limits end it)."""
    session = RawSession(front, http, token)
    resp = await session.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT_PARAMS})
    assert resp.status_code == 200, resp.text
    session.session_id = resp.headers["mcp-session-id"]
    return session


# -- 11. a stdio server holds none of the gateway's sockets ------------------------------------------------------------


async def test_a_stdio_server_inherits_no_socket_of_the_gateway(front: Front, http: httpx.AsyncClient) -> None:
    if front.kind == "remote":
        pytest.skip("the gateway starts no process in front of a remote server")
    gateways = sockets_of(front.gateway.process.pid)
    assert gateways  # its listening socket at least
    async with open_session(front, http, front.token()) as session:
        answer = await session.request(session.rpc("tools/call", {"name": "open_sockets", "arguments": {}}))
        servers = {entry.split(" -> ")[1] for entry in answer.message["result"]["structuredContent"]["result"]}
    assert not servers & (gateways | sockets_of(front.gateway.process.pid))


def sockets_of(pid: int) -> set[str]:
    """`socket:[inode]` of every socket process `pid` holds."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:"):
                found.add(target)
    return found


# -- 7. authentication failures are logged, never the token, at a bounded rate -----------------------------------------


async def test_authentication_failures_are_logged_with_reason_and_source_never_the_token(
    front: Front, http: httpx.AsyncClient
) -> None:
    expired = front.issuer.token(AUDIENCE, sub="eve", exp=1_000_000_000)
    foreign = front.issuer.token("some-other-api", sub="eve")
    start = len(front.gateway.stderr)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for headers in ({}, {"authorization": f"Bearer {expired}"}, {"authorization": f"Bearer {foreign}"}):
        method = "GET" if front.kind == "sse" else "POST"
        resp = await http.request(method, front.url, json=None if method == "GET" else ping, headers=headers)
        assert resp.status_code == 401

    def logged() -> list[str]:
        return [line for line in front.gateway.stderr[start:] if "authentication failed" in line]

    await wait_for(lambda: len(logged()) == 3)
    path = "/sse" if front.kind == "sse" else "/mcp"
    assert f"{path} from 127.0.0.1: missing_token (" in logged()[0]
    assert "invalid_token (Token has expired)" in logged()[1]
    assert "invalid_token (Token audience does not include this server)" in logged()[2]
    assert not any(token in line for line in front.gateway.stderr for token in (expired, foreign))
    assert not any(token.split(".")[2] in line for line in front.gateway.stderr for token in (expired, foreign))


async def test_a_flood_of_bad_tokens_writes_a_bounded_number_of_lines(front: Front, http: httpx.AsyncClient) -> None:
    if front.kind != "stdio":
        pytest.skip("the limit is the gateway's, the same on every front: one front shows it")
    start = len(front.gateway.stderr)
    bad = {"authorization": "Bearer not-a-token"}
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for _ in range(300):
        resp = await http.post(front.url, json=ping, headers=bad)
        assert resp.status_code == 401

    def lines() -> list[str]:
        return [line for line in front.gateway.stderr[start:] if "authentication failed" in line]

    def accounted() -> int:
        """Failures written, plus those a written line says were dropped."""
        counts = (re.search(r"\((\d+) more dropped\)", line) for line in lines())
        return len(lines()) + sum(int(m.group(1)) for m in counts if m)

    with anyio.fail_after(15):  # the budget refills: a later failure's line says how many were left out
        while accounted() < 300:
            await http.post(front.url, json=ping, headers=bad)
            await asyncio.sleep(0.1)
    assert len(lines()) < 100
