"""A policy on tool annotations decides a client's very first call, before it ever listed the tools: the gateway
asks the backend for its tool list itself (ToolHive only learns annotations from lists the client asked for), for a
stdio backend and for a remote one answering with an event stream or with JSON, and on the legacy SSE front."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from support.backend import fixture_http_server
from support.gateway import fixture_command, hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ACCEPT = {"accept": "application/json, text/event-stream"}


@asynccontextmanager
async def backend(kind: str) -> AsyncIterator[list[str]]:
    """The gateway's target arguments: the stdio fixture, or the fixture serving Streamable HTTP."""
    if kind == "stdio":
        yield fixture_command()
        return
    async with fixture_http_server(kind) as url:
        yield [url]


@pytest.mark.parametrize("kind", ["stdio", "--http", "--http-json"])
async def test_read_only_policy_decides_a_call_made_without_listing_first(tmp_path: Path, kind: str) -> None:
    policy = 'permit(principal, action == Action::"call_tool", resource) when { resource.readOnlyHint == true };'
    config = tmp_path / "authz.json"
    config.write_text(json.dumps({"version": "1", "type": "cedarv1", "cedar": {"policies": [policy]}}))
    async with (
        backend(kind) as target,
        hivegate_run(["--authz-config", str(config), *target]) as gw,
        httpx.AsyncClient() as http,
    ):
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip  # noqa: E501
        answer = await http.post(gw.url, json=init, headers=ACCEPT)
        headers = {**ACCEPT, "mcp-session-id": answer.headers["mcp-session-id"]}
        await http.post(gw.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)

        async def call(rid: int, name: str) -> int:
            body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name, "arguments": {}}}
            return (await http.post(gw.url, json=body, headers=headers)).status_code

        assert await call(1, "list_namespaces") == 200  # readOnlyHint=True in the fixture
        assert await call(2, "delete_namespace") == 403  # destructive, not read-only


async def test_read_only_policy_decides_a_first_call_on_the_legacy_sse_front(tmp_path: Path) -> None:
    policy = 'permit(principal, action == Action::"call_tool", resource) when { resource.readOnlyHint == true };'
    config = tmp_path / "authz.json"
    config.write_text(json.dumps({"version": "1", "type": "cedarv1", "cedar": {"policies": [policy]}}))
    async with (
        hivegate_run(["--proxy-mode", "sse", "--authz-config", str(config), *fixture_command()]) as gw,
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", gw.url, headers={"accept": "text/event-stream"}) as stream,
    ):
        events = stream.aiter_lines()
        post_url = gw.base + await next_data(events)
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip  # noqa: E501
        assert (await http.post(post_url, json=init)).status_code == 202
        assert json.loads(await next_data(events))["id"] == 0
        await http.post(post_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})

        async def call(rid: int, name: str) -> dict[str, object]:
            body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name, "arguments": {}}}
            assert (await http.post(post_url, json=body)).status_code == 202  # answers come on the stream
            answer: dict[str, object] = json.loads(await next_data(events))
            assert answer["id"] == rid
            return answer

        assert "result" in await call(1, "list_namespaces")  # readOnlyHint=True in the fixture
        assert await call(2, "delete_namespace") == {
            "jsonrpc": "2.0",
            "id": 2,
            "error": {"code": 403, "message": "denied by policy"},
        }


async def next_data(lines: AsyncIterator[str]) -> str:
    with anyio.fail_after(15):
        async for line in lines:
            if line.startswith("data:"):
                return line[5:].strip()
    raise AssertionError("event stream ended")
