"""`hivegate run -- COMMAND`: a real stdio MCP server behind the gateway, called by the official MCP SDK client."""

from __future__ import annotations

import asyncio
import time

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from support.gateway import fixture_command, hivegate_run
from support.issuer import local_issuer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def sdk_client(url: str, token: str | None = None, **kwargs: object) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60))
    return Client(streamable_http_client(url, http_client=http), mode="legacy", **kwargs)  # type: ignore[arg-type]


def text_of(result: object) -> str:
    return result.content[0].text  # type: ignore[attr-defined,no-any-return]


async def test_sdk_client_calls_a_tool_in_local_mode() -> None:
    async with hivegate_run(fixture_command()) as gw, sdk_client(gw.url) as client:
        tools = await client.list_tools()
        assert {"echo", "whoami", "progress", "log", "crash"} <= {t.name for t in tools.tools}
        result = await client.call_tool("echo", {"text": "hello"})
        assert text_of(result) == "hello"


async def test_jwt_is_required_and_checked() -> None:
    async with local_issuer() as issuer:
        args = [
            "--oidc-issuer", issuer.url, "--oidc-audience", "hivegate-test", "--oidc-jwks-url", issuer.jwks_url,
            "--oidc-insecure-allow-http", "--jwks-allow-private-ip", *fixture_command(),
        ]  # fmt: skip
        async with hivegate_run(args) as gw:
            async with httpx.AsyncClient() as http:
                missing = await http.post(gw.url, json=INIT, headers=ACCEPT)
                assert missing.status_code == 401
                challenge = missing.headers["www-authenticate"]
                assert challenge.startswith("Bearer ")
                assert f'resource_metadata="{gw.base}/.well-known/oauth-protected-resource/mcp"' in challenge
                assert missing.json()["error"] == "invalid_request"

                wrong_aud = issuer.token(audience="someone-else")
                bad = await http.post(gw.url, json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {wrong_aud}"})
                assert bad.status_code == 401
                assert 'error="invalid_token"' in bad.headers["www-authenticate"]

                expired = issuer.token(exp=int(time.time()) - 3600)
                bad = await http.post(gw.url, json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {expired}"})
                assert bad.status_code == 401

                in_query = await http.post(f"{gw.url}?access_token={issuer.token()}", json=INIT, headers=ACCEPT)
                assert in_query.status_code == 401

                prm = await http.get(f"{gw.base}/.well-known/oauth-protected-resource/mcp")
                assert prm.status_code == 200
                assert prm.json()["authorization_servers"] == [issuer.url]
                assert prm.json()["resource"] == gw.url

            async with sdk_client(gw.url, issuer.token()) as client:
                assert text_of(await client.call_tool("echo", {"text": "signed"})) == "signed"


async def test_each_client_session_gets_its_own_backend_process() -> None:
    async with hivegate_run(fixture_command()) as gw, sdk_client(gw.url) as a, sdk_client(gw.url) as b:
        pid_a = text_of(await a.call_tool("whoami", {}))
        pid_b = text_of(await b.call_tool("whoami", {}))
        assert pid_a != pid_b
        assert text_of(await a.call_tool("whoami", {})) == pid_a


async def test_many_requests_in_flight_on_one_session() -> None:
    async with hivegate_run(fixture_command()) as gw, sdk_client(gw.url) as client:
        results = await asyncio.gather(*(client.call_tool("echo", {"text": str(i)}) for i in range(50)))
        assert [text_of(r) for r in results] == [str(i) for i in range(50)]


async def test_progress_and_logs_reach_the_client_that_asked() -> None:
    logs_a: list[str] = []
    logs_b: list[str] = []

    async def on_log_a(params: object) -> None:
        logs_a.append(params.data)  # type: ignore[attr-defined]

    async def on_log_b(params: object) -> None:
        logs_b.append(params.data)  # type: ignore[attr-defined]

    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with (
        hivegate_run(fixture_command()) as gw,
        sdk_client(gw.url, logging_callback=on_log_a) as a,
        sdk_client(gw.url, logging_callback=on_log_b) as b,
    ):
        res_a, res_b = await asyncio.gather(
            a.call_tool("log", {"message": "for a"}),
            b.call_tool("log", {"message": "for b"}),
        )
        assert text_of(res_a) == text_of(res_b) == "logged"
        done = await a.call_tool("progress", {"steps": 5}, progress_callback=on_progress)
        assert text_of(done) == "done"
    assert logs_a == ["for a"]
    assert logs_b == ["for b"]
    assert progress == [1, 2, 3, 4, 5]


async def test_backend_crash_fails_in_flight_requests_at_once_and_restarts() -> None:
    async with hivegate_run(fixture_command()) as gw, sdk_client(gw.url) as client:
        before = text_of(await client.call_tool("whoami", {}))
        started = time.monotonic()
        slow = asyncio.create_task(client.call_tool("slow", {"seconds": 30}))
        await asyncio.sleep(0.2)  # let the slow call reach the backend before it dies
        with pytest.raises(Exception, match="went away"):
            await client.call_tool("crash", {})
        with pytest.raises(Exception, match="went away"):
            await slow
        assert time.monotonic() - started < 10
        after = text_of(await client.call_tool("whoami", {}))
        assert after != before
        assert text_of(await client.call_tool("echo", {"text": "still here"})) == "still here"


async def test_a_2026_07_28_client_is_served_statelessly_by_a_process_of_its_own() -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    # Client(url) is mode="auto": it probes server/discover and stays on 2026-07-28 when the server speaks it
    async with hivegate_run(fixture_command()) as gw, Client(gw.url) as modern, sdk_client(gw.url) as legacy:
        assert modern.session.discover_result is not None
        assert modern.session.discover_result.supported_versions == ["2026-07-28"]
        assert text_of(await modern.call_tool("echo", {"text": "stateless"})) == "stateless"
        done = await modern.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
        assert text_of(done) == "done"
        pid_modern = text_of(await modern.call_tool("whoami", {}))
        assert text_of(await modern.call_tool("whoami", {})) == pid_modern  # the same caller's process, reused
        assert text_of(await legacy.call_tool("whoami", {})) != pid_modern
    assert progress == [1, 2, 3]
