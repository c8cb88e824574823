"""`hivegate run URL` and `--proxy-mode sse`: remote backends and the legacy transport, with real SDK clients."""

from __future__ import annotations

import json

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from support.backend import closed_port, fixture_http_server
from support.gateway import fixture_command, hivegate_run
from support.issuer import local_issuer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def text_of(result: object) -> str:
    return result.content[0].text  # type: ignore[attr-defined,no-any-return]


async def test_remote_streamable_backend_never_sees_the_callers_token() -> None:
    async with local_issuer() as issuer, fixture_http_server() as backend:
        args = [
            "--oidc-issuer", issuer.url, "--oidc-audience", "hivegate-test", "--oidc-jwks-url", issuer.jwks_url,
            "--oidc-insecure-allow-http", "--jwks-allow-private-ip", backend,
        ]  # fmt: skip
        async with hivegate_run(args) as gw:
            token = issuer.token()
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}", "Cookie": "sid=secret"})
            async with Client(streamable_http_client(gw.url, http_client=http), mode="legacy") as client:
                assert text_of(await client.call_tool("echo", {"text": "via proxy"})) == "via proxy"
                seen = json.loads(text_of(await client.call_tool("headers", {})))
            lowered = {k.lower(): v for k, v in seen.items()}
            assert "authorization" not in lowered
            assert "cookie" not in lowered
            assert token not in json.dumps(seen)
            async with httpx.AsyncClient() as raw:
                resp = await raw.post(gw.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
                assert resp.status_code == 401


async def test_modern_sdk_client_in_auto_mode_through_the_reverse_proxy() -> None:
    async with fixture_http_server() as backend, hivegate_run([backend]) as gw, Client(gw.url) as client:
        assert text_of(await client.call_tool("echo", {"text": "auto"})) == "auto"


async def test_unreachable_remote_backend_is_a_jsonrpc_error() -> None:
    dead = f"http://127.0.0.1:{closed_port()}/mcp"
    async with hivegate_run([dead]) as gw, httpx.AsyncClient() as http:
        resp = await http.post(
            gw.url,
            json={"jsonrpc": "2.0", "id": 5, "method": "ping"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert resp.status_code == 502
        assert resp.json()["id"] == 5
        assert resp.json()["error"]["code"] == -32000


async def test_legacy_sse_front_for_a_stdio_server() -> None:
    async with hivegate_run(["--proxy-mode", "sse", *fixture_command()]) as gw:
        assert gw.url.endswith("/sse")
        async with Client(sse_client(gw.url), mode="legacy") as client:
            assert text_of(await client.call_tool("echo", {"text": "over sse"})) == "over sse"


async def test_legacy_sse_backend_behind_streamable_http() -> None:
    async with (
        fixture_http_server("--sse") as backend,
        hivegate_run(["--transport", "sse", backend]) as gw,
        Client(streamable_http_client(gw.url), mode="legacy") as client,
    ):
        assert text_of(await client.call_tool("echo", {"text": "bridged"})) == "bridged"


async def test_streamable_backend_behind_legacy_sse_front() -> None:
    async with (
        fixture_http_server() as backend,
        hivegate_run(["--proxy-mode", "sse", backend]) as gw,
        Client(sse_client(gw.url), mode="legacy") as client,
    ):
        assert text_of(await client.call_tool("echo", {"text": "the other way"})) == "the other way"
