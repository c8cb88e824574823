"""The virtual MCP server across replicas and towards HTTP backends: sessions shared through a real Redis (a
replica resumes a session another one opened, for its owner only), and the backend's own credential
(`headerInjection`) while the caller's token never reaches the backend."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from support.backend import fixture_http_server
from support.gateway import FIXTURE, RunningGateway, hivegate_vmcp
from support.issuer import LocalIssuer, local_issuer
from support.redis_server import RedisServer, start_redis

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AUDIENCE = "vmcp-test"
ACCEPT = "application/json, text/event-stream"
INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}


def oidc(issuer: LocalIssuer) -> dict[str, Any]:
    return {
        "type": "oidc",
        "oidc": {
            "issuer": issuer.url,
            "audience": AUDIENCE,
            "jwksUrl": issuer.jwks_url,
            "insecureAllowHttp": True,
            "protectedResourceAllowPrivateIp": True,
        },
    }


def write(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


async def post(
    client: httpx.AsyncClient, gateway: RunningGateway, token: str, body: dict[str, Any], session: str | None = None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}", "accept": ACCEPT, "mcp-protocol-version": "2025-06-18"}
    if session is not None:
        headers["mcp-session-id"] = session
    return await client.post(gateway.url, json=body, headers=headers)


async def open_session(client: httpx.AsyncClient, gateway: RunningGateway, token: str) -> str:
    answer = await post(client, gateway, token, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT})
    assert answer.status_code == 200, answer.text
    session = answer.headers["mcp-session-id"]
    note = await post(client, gateway, token, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    assert note.status_code == 202
    return session


def call(name: str, request_id: int = 2, **arguments: Any) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def text_of(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["isError"] is False, result
    return str(result["content"][0]["text"])


def shared_config(issuer: LocalIssuer, redis: RedisServer) -> dict[str, Any]:
    return {
        "name": "shared",
        "backends": [{"name": "tools", "command": sys.executable, "args": [FIXTURE]}],
        "incomingAuth": oidc(issuer),
        "sessionStorage": {"provider": "redis", "address": f"127.0.0.1:{redis.port}", "keyPrefix": "e2e:"},
    }


@asynccontextmanager
async def replicas(
    tmp_path: Path,
) -> AsyncIterator[tuple[str, str, str, RunningGateway, RunningGateway, httpx.AsyncClient]]:
    """Two vMCP replicas sharing sessions through a real Redis: the config path, alice's and bob's tokens, the
    replicas and an HTTP client."""
    async with local_issuer() as issuer, start_redis() as redis:
        path = write(tmp_path, shared_config(issuer, redis))
        alice, bob = issuer.token(AUDIENCE, sub="alice"), issuer.token(AUDIENCE, sub="bob")
        async with (
            hivegate_vmcp(["--config", path, "--port", "0"]) as a,
            hivegate_vmcp(["--config", path, "--port", "0"]) as b,
            httpx.AsyncClient(timeout=30) as client,
        ):
            yield path, alice, bob, a, b, client


async def test_a_replica_resumes_a_session_another_opened_for_its_owner_only(tmp_path: Path) -> None:
    async with replicas(tmp_path) as (path, alice, bob, a, b, client):
        session = await open_session(client, a, alice)
        on_a = text_of(await post(client, a, alice, call("tools_whoami"), session))
        on_b = text_of(await post(client, b, alice, call("tools_whoami", 3), session))
        again_b = text_of(await post(client, b, alice, call("tools_whoami", 4), session))
        assert on_b == again_b  # replica B resumed the session once and keeps its backend session
        assert on_b != on_a  # ... a process of its own: backend processes never cross replicas
        echoed = text_of(await post(client, b, alice, call("tools_echo", 5, text="via b"), session))
        assert echoed == "via b"

        stolen = await post(client, b, bob, call("tools_whoami", 6), session)
        assert stolen.status_code == 404
        assert stolen.json()["error"]["code"] == -32001
        unknown = await post(client, b, alice, call("tools_whoami", 7), "no-such-session")
        assert unknown.status_code == 404

        ready = await client.get(f"{b.base}/readyz")
        assert ready.json()["checks"]["session store"] == "ok"
        ended = await client.delete(a.url, headers={"authorization": f"Bearer {alice}", "mcp-session-id": session})
        assert ended.status_code == 200
        # B, which holds a copy, drops it within ENDED_RECHECK (5 s) of the DELETE at A
        deadline = time.monotonic() + 10
        attempt = 10
        while (late := await post(client, b, alice, call("tools_whoami", attempt), session)).status_code != 404:
            assert late.status_code == 200
            assert time.monotonic() < deadline, "the session ended at A still works at B"
            attempt += 1
            await asyncio.sleep(0.25)
        # a replica started after the DELETE cannot resume the session: its record is gone from Redis
        async with hivegate_vmcp(["--config", path, "--port", "0"]) as c:
            gone = await post(client, c, alice, call("tools_whoami", 8), session)
            assert gone.status_code == 404


async def test_while_redis_is_down_a_session_held_elsewhere_is_unavailable_not_ended(tmp_path: Path) -> None:
    async with local_issuer() as issuer, start_redis() as redis:
        path = write(tmp_path, shared_config(issuer, redis))
        alice = issuer.token(AUDIENCE, sub="alice")
        async with (
            hivegate_vmcp(["--config", path, "--port", "0"]) as a,
            hivegate_vmcp(["--config", path, "--port", "0"]) as b,
            httpx.AsyncClient(timeout=30) as client,
        ):
            session = await open_session(client, a, alice)
            assert redis.process is not None
            redis.process.kill()
            await redis.process.wait()
            at_b = await post(client, b, alice, call("tools_echo", text="x"), session)
            assert at_b.status_code == 503, at_b.text  # B cannot know: a 404 would end the client's session
            assert at_b.headers["retry-after"] == "1"
            assert text_of(await post(client, a, alice, call("tools_echo", 3, text="y"), session)) == "y"


async def test_a_delete_at_a_replica_that_never_served_the_session_ends_it_without_resuming_it(
    tmp_path: Path,
) -> None:
    async with replicas(tmp_path) as (_, alice, bob, a, b, client):
        session = await open_session(client, a, alice)
        assert text_of(await post(client, a, alice, call("tools_echo", text="x"), session)) == "x"

        def delete(token: str) -> Any:
            return client.delete(b.url, headers={"authorization": f"Bearer {token}", "mcp-session-id": session})

        assert (await delete(bob)).status_code == 404  # not bob's to end
        assert text_of(await post(client, a, alice, call("tools_echo", 3, text="y"), session)) == "y"
        assert (await delete(alice)).status_code == 200
        assert not any("resumed" in line for line in b.stderr)  # B never opened backends for it
        deadline, attempt = time.monotonic() + 10, 10
        while (await post(client, a, alice, call("tools_whoami", attempt), session)).status_code != 404:
            assert time.monotonic() < deadline, "the session ended at B still works at A"
            attempt += 1
            await asyncio.sleep(0.25)
        assert (await delete(alice)).status_code == 404  # ended once


async def test_header_injection_reaches_the_backend_and_the_callers_token_never_does(tmp_path: Path) -> None:
    async with local_issuer() as issuer, fixture_http_server() as backend_url:
        config = {
            "name": "creds",
            "backends": [{"name": "remote", "url": backend_url, "transport": "streamable-http"}],
            "incomingAuth": oidc(issuer),
            "outgoingAuth": {
                "source": "inline",
                "backends": {
                    "remote": {
                        "type": "headerInjection",
                        "headerInjection": {"headerName": "X-Api-Key", "headerValueEnv": "E2E_BACKEND_KEY"},
                    }
                },
            },
        }
        path = write(tmp_path, config)
        token = issuer.token(AUDIENCE, sub="alice")
        env = {"E2E_BACKEND_KEY": "backend-key-1234"}
        async with (
            hivegate_vmcp(["--config", path, "--port", "0"], env=env) as gateway,
            httpx.AsyncClient(timeout=30) as client,
        ):
            session = await open_session(client, gateway, token)
            seen = json.loads(text_of(await post(client, gateway, token, call("remote_headers"), session)))
            lowered = {k.lower(): v for k, v in seen.items()}
            assert lowered["x-api-key"] == "backend-key-1234"
            assert "authorization" not in lowered
            assert token not in json.dumps(seen)
        assert not any("backend-key-1234" in line for line in gateway.stderr)  # never logged


async def test_a_credential_a_backend_cannot_take_stops_start_up_naming_it(tmp_path: Path) -> None:
    config = {
        "name": "bad-creds",
        "backends": [{"name": "local", "command": sys.executable, "args": [FIXTURE]}],
        "incomingAuth": {"type": "anonymous"},
        "outgoingAuth": {
            "source": "inline",
            "default": {"type": "headerInjection", "headerInjection": {"headerName": "X-Api-Key", "headerValue": "k"}},
        },
    }
    path = write(tmp_path, config)
    expected = r"exited with 1: hivegate vmcp serve: outgoingAuth: backend 'local' is a stdio command"
    with pytest.raises(RuntimeError, match=expected):
        async with hivegate_vmcp(["--config", path, "--port", "0"]):
            pass
