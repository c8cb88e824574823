"""The audit trail records every authorization decision on every front: a list answer filtered per caller carries
`{"decision": "filter", "allowed", "denied"}`, a method the gateway never lets through a deny by no policy.

Streamable HTTP (a JSON-RPC batch), the legacy SSE transport (answers on the event stream) and the reverse proxy
(JSON and SSE answers) each hand the filter's counts to the call by their own path; one gateway each.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from e2e.test_authz_gateway import (
    ALL_TEMPLATES,
    ALL_TOOLS,
    AUDIENCE,
    INIT,
    SEED_002,
    RawClient,
    http_fixture,
    no_traceback,
    oidc_flags,
    stdio_gateway,
    write_authz,
)
from support.gateway import hivegate_run
from support.issuer import local_issuer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

# SEED_002 lets the platform group call get_pods and nothing else
PLATFORM_TOOLS = {"allowed": 1, "denied": len(ALL_TOOLS) - 1}
DENY = {"decision": "deny", "policies": [], "why": "method"}  # a method the gateway never lets through


def audit_flags(tmp_path: Path) -> tuple[list[str], Path]:
    audit_file = tmp_path / "audit.jsonl"
    (tmp_path / "audit.yaml").write_text(f"logFile: {audit_file}\n")
    return ["--audit-config", str(tmp_path / "audit.yaml")], audit_file


async def audit_lines(path: Path, method: str, count: int) -> list[dict[str, Any]]:
    """The audit lines of `method`, once `count` of them are written (a line is written as the exchange ends)."""
    with anyio.fail_after(10):
        while True:
            text = path.read_text() if path.exists() else ""
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            found = [line for line in lines if line["target"]["method"] == method]
            if len(found) >= count:
                return found
            await anyio.sleep(0.05)


async def next_data(lines: AsyncIterator[str]) -> str:
    with anyio.fail_after(15):
        async for line in lines:
            if line.startswith("data:"):
                return line[5:].strip()
    raise AssertionError("event stream ended")


def authorization(line: dict[str, Any]) -> Any:
    return line["metadata"]["extra"].get("authorization")


async def test_a_streamable_batch_audits_each_filtered_list(tmp_path: Path) -> None:
    flags, audit_file = audit_flags(tmp_path)
    async with stdio_gateway(tmp_path, SEED_002, *flags) as (gw, issuer, _):
        platform = issuer.token(AUDIENCE, sub="00u1plat", groups=["mcp-platform"])
        async with httpx.AsyncClient(timeout=30) as http:
            raw = RawClient(http, gw.url, platform)
            await raw.initialize()
            batch = [
                {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                {"jsonrpc": "2.0", "id": 2, "method": "resources/templates/list"},
            ]
            resp = await raw.post(batch)
            assert resp.status_code == 200, resp.text
            answers = {a["id"]: a for a in resp.json()}
            assert [t["name"] for t in answers[1]["result"]["tools"]] == ["get_pods"]
            assert answers[2]["result"]["resourceTemplates"] == []
            await raw.refused("tasks/list")
        no_traceback(gw)
    (tools,) = await audit_lines(audit_file, "tools/list", 1)
    assert authorization(tools) == {"decision": "filter", **PLATFORM_TOOLS}
    (templates,) = await audit_lines(audit_file, "resources/templates/list", 1)
    assert authorization(templates) == {"decision": "filter", "allowed": 0, "denied": len(ALL_TEMPLATES)}
    (tasks,) = await audit_lines(audit_file, "tasks/list", 1)
    assert (tasks["outcome"], authorization(tasks)) == ("denied", DENY)


async def test_the_legacy_sse_front_audits_a_filtered_list_answered_on_the_stream(tmp_path: Path) -> None:
    flags, audit_file = audit_flags(tmp_path)
    async with stdio_gateway(tmp_path, SEED_002, "--proxy-mode", "sse", *flags) as (gw, issuer, _):
        headers = {"Authorization": f"Bearer {issuer.token(AUDIENCE, sub='00u1plat', groups=['mcp-platform'])}"}
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("GET", gw.url, headers={**headers, "Accept": "text/event-stream"}) as stream,
        ):
            lines = stream.aiter_lines()
            post_url = gw.base + await next_data(lines)
            init = {**INIT, "params": {**INIT["params"], "protocolVersion": "2024-11-05"}}  # type: ignore[dict-item]
            assert (await http.post(post_url, json=init, headers=headers)).status_code == 202
            assert json.loads(await next_data(lines))["id"] == 0
            listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            assert (await http.post(post_url, json=listing, headers=headers)).status_code == 202
            answer = json.loads(await next_data(lines))
            assert [t["name"] for t in answer["result"]["tools"]] == ["get_pods"]
            tasks = {"jsonrpc": "2.0", "id": 2, "method": "tasks/list"}
            assert (await http.post(post_url, json=tasks, headers=headers)).status_code == 202
            assert json.loads(await next_data(lines))["error"]["code"] == 403
            (tools,) = await audit_lines(audit_file, "tools/list", 1)
        no_traceback(gw)
    assert tools["outcome"] == "success"
    assert authorization(tools) == {"decision": "filter", **PLATFORM_TOOLS}
    (refused,) = await audit_lines(audit_file, "tasks/list", 1)
    assert (refused["outcome"], authorization(refused)) == ("denied", DENY)


@pytest.mark.parametrize("mode", ["--http", "--http-json"])
async def test_the_reverse_proxy_audits_filtered_json_and_sse_answers(tmp_path: Path, mode: str) -> None:
    flags, audit_file = audit_flags(tmp_path)
    config = write_authz(tmp_path / "authz.json", SEED_002)
    async with local_issuer() as issuer, http_fixture(mode, {}) as backend:
        args = [*oidc_flags(issuer), "--authz-config", str(config), *flags, backend]
        platform = issuer.token(AUDIENCE, sub="00u1plat", groups=["mcp-platform"])
        async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
            raw = RawClient(http, gw.url, platform)
            await raw.refused("tasks/list")
            await raw.initialize()
            _, resp = await raw.request("tools/list")
            assert resp.status_code == 200
            expected = "text/event-stream" if mode == "--http" else "application/json"
            assert resp.headers["content-type"].startswith(expected)
        no_traceback(gw)
    (tools,) = await audit_lines(audit_file, "tools/list", 1)
    assert authorization(tools) == {"decision": "filter", **PLATFORM_TOOLS}
    (tasks,) = await audit_lines(audit_file, "tasks/list", 1)
    assert (tasks["outcome"], authorization(tasks)) == ("denied", DENY)
