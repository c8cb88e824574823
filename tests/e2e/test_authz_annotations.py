"""A policy on tool annotations decides a client's very first call, before it ever listed the tools: the gateway
asks the backend for its tool list itself (ToolHive only learns annotations from lists the client asked for)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from support.gateway import fixture_command, hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ACCEPT = {"accept": "application/json, text/event-stream"}


async def test_read_only_policy_decides_a_call_made_without_listing_first(tmp_path: Path) -> None:
    policy = 'permit(principal, action == Action::"call_tool", resource) when { resource.readOnlyHint == true };'
    config = tmp_path / "authz.json"
    config.write_text(json.dumps({"version": "1", "type": "cedarv1", "cedar": {"policies": [policy]}}))
    async with hivegate_run(["--authz-config", str(config), *fixture_command()]) as gw, httpx.AsyncClient() as http:
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
