"""`hivegate vmcp serve` aggregating real backends, as a client sees it: the conflict strategies (`prefix` with the
default and a custom `prefixFormat`, `priority`, `manual`), per-backend `filter`/`excludeAll`/`overrides`, the global
`excludeAllTools`, and Cedar policies on the advertised names deciding, per group of a signed token, which tools a
caller sees and may call."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from support.gateway import FIXTURE, REPO, RunningGateway, hivegate_vmcp
from support.issuer import LocalIssuer, local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CONFORMANCE = os.path.join(REPO, "tests", "fixtures", "conformance_server.py")
AUDIENCE = "vmcp-aggregation"
INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}


# -- helpers shared with test_vmcp_failures ---------------------------------------------------------------------------


def stdio_backend(name: str, script: str = FIXTURE, **env: str) -> dict[str, Any]:
    """A stdio backend; the stdio fixture's `getenv` tool tells which backend answered (`WHO=<name>`)."""
    return {"name": name, "command": sys.executable, "args": [script], "env": {"WHO": name, **env}}


def oidc_incoming(issuer: LocalIssuer, audience: str, policies: Sequence[str]) -> dict[str, Any]:
    """`incomingAuth`: tokens of the test issuer for `audience`, decided by Cedar `policies`."""
    return {
        "type": "oidc",
        "oidc": {"issuer": issuer.url, "audience": audience, "jwksUrl": issuer.jwks_url,
                 "insecureAllowHttp": True, "protectedResourceAllowPrivateIp": True},
        "authz": {"type": "cedar", "policies": list(policies)},
    }  # fmt: skip


def write_config(tmp_path: Path, backends: Sequence[dict[str, Any]], **sections: Any) -> str:
    config = {"name": "e2e", "backends": list(backends), "incomingAuth": {"type": "anonymous"}, **sections}
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@dataclass
class McpClient:
    """One MCP session over Streamable HTTP with the virtual server (bearer `token` when given)."""

    http: httpx.AsyncClient
    url: str
    token: str | None = None
    session: str | None = None
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def rpc(self, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        if self.session is not None:
            headers["mcp-session-id"] = self.session
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self.ids), "method": method}
        if params is not None:
            body["params"] = params
        return await self.http.post(self.url, json=body, headers=headers)

    async def tools(self) -> dict[str, dict[str, Any]]:
        """The advertised tools by name (the answer must be a result)."""
        answer = await self.rpc("tools/list")
        assert answer.status_code == 200, answer.text
        return {tool["name"]: tool for tool in answer.json()["result"]["tools"]}

    async def call(self, tool: str, /, **arguments: Any) -> httpx.Response:
        return await self.rpc("tools/call", {"name": tool, "arguments": arguments})

    async def text(self, tool: str, /, **arguments: Any) -> str:
        """The text a successful tool call returns."""
        answer = await self.call(tool, **arguments)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        result = body.get("result")
        assert result is not None, body
        assert result["isError"] is False, body
        return str(result["content"][0]["text"])


async def connect(http: httpx.AsyncClient, gateway: RunningGateway, token: str | None = None) -> McpClient:
    """`initialize` + `notifications/initialized`: a session ready for requests."""
    client = McpClient(http, gateway.url, token)
    answer = await client.rpc("initialize", INIT)
    assert answer.status_code == 200, answer.text
    client.session = answer.headers["mcp-session-id"]
    headers = {"accept": "application/json, text/event-stream", "mcp-session-id": client.session}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    note = await http.post(gateway.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    assert note.status_code == 202
    return client


async def run_to_exit(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, list[str]]:
    """`hivegate ARGV` run to completion: its exit code and its non-empty stderr lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivegate", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, [line for line in err.decode(errors="replace").splitlines() if line.strip()]


def one_error_line(lines: Sequence[str], command: str) -> str:
    """The last stderr line, which must be the command's own error; no traceback anywhere."""
    assert lines, "no error on stderr"
    assert not any("Traceback" in line for line in lines), lines
    assert lines[-1].startswith(f"hivegate vmcp {command}: "), lines
    return lines[-1]


# -- conflict strategies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution_config", "alpha", "beta"),
    [
        ({}, "alpha_", "beta_"),
        ({"conflictResolutionConfig": {"prefixFormat": "{workload}."}}, "alpha.", "beta."),
    ],
    ids=["default-format", "custom-format"],
)
async def test_prefix_advertises_every_tool_under_its_backends_prefix_and_routes_it_back(
    tmp_path: Path, resolution_config: dict[str, Any], alpha: str, beta: str
) -> None:
    path = write_config(tmp_path, [stdio_backend("alpha"), stdio_backend("beta")], aggregation=resolution_config)
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        client = await connect(http, gateway)
        names = set(await client.tools())
        assert {f"{alpha}getenv", f"{beta}getenv", f"{alpha}echo", f"{beta}echo"} <= names
        assert "getenv" not in names
        assert "echo" not in names
        assert all(n.startswith((alpha, beta)) for n in names)
        assert await client.text(f"{alpha}getenv", name="WHO") == "alpha"
        assert await client.text(f"{beta}getenv", name="WHO") == "beta"
        prompts = await client.rpc("prompts/list")
        assert {f"{alpha}review", f"{beta}review"} <= {p["name"] for p in prompts.json()["result"]["prompts"]}


async def test_priority_gives_a_clashing_name_to_the_first_backend_of_priority_order(tmp_path: Path) -> None:
    aggregation = {
        "conflictResolution": "priority",
        "conflictResolutionConfig": {"priorityOrder": ["beta", "alpha"]},
        "tools": [{"workload": "beta", "filter": ["getenv"]}],  # only getenv clashes
    }
    path = write_config(tmp_path, [stdio_backend("alpha"), stdio_backend("beta")], aggregation=aggregation)
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        client = await connect(http, gateway)
        names = set(await client.tools())
        assert "getenv" in names
        assert "echo" in names
        assert not any(n.endswith("_getenv") for n in names)  # the loser's copy is gone, not renamed
        assert await client.text("getenv", name="WHO") == "beta"  # the winner's tool is the one called
        assert await client.text("echo", text="from alpha") == "from alpha"


def manual_aggregation(*, resolve: bool) -> dict[str, Any]:
    """alpha (the stdio fixture) and beta (the conformance server) clash on `echo` once beta renames a tool to it;
    with `resolve`, alpha's `echo` is renamed in turn. Their prompts and resources never clash."""
    tools: list[dict[str, Any]] = [
        {"workload": "beta", "overrides": {"test_simple_text": {"name": "echo"}}},
    ]
    if resolve:
        tools.append({"workload": "alpha", "overrides": {"echo": {"name": "say"}}})
    return {"conflictResolution": "manual", "tools": tools}


async def test_manual_serves_bare_names_once_overrides_resolve_the_clash(tmp_path: Path) -> None:
    backends = [stdio_backend("alpha"), stdio_backend("beta", CONFORMANCE)]
    path = write_config(tmp_path, backends, aggregation=manual_aggregation(resolve=True))
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        client = await connect(http, gateway)
        names = set(await client.tools())
        assert {"say", "echo", "getenv", "test_image_content"} <= names  # bare names from both backends
        assert "test_simple_text" not in names
        assert not any(n.startswith(("alpha_", "beta_")) for n in names)
        assert await client.text("echo") == "This is a simple text response for testing."  # beta's renamed tool
        assert await client.text("say", text="alpha's echo") == "alpha's echo"


async def test_manual_with_a_clash_left_unresolved_stops_serve_naming_the_tool_and_backends(tmp_path: Path) -> None:
    backends = [stdio_backend("alpha"), stdio_backend("beta", CONFORMANCE)]
    path = write_config(tmp_path, backends, aggregation=manual_aggregation(resolve=False))
    code, lines = await run_to_exit(["vmcp", "serve", "--config", path, "--port", "0"])
    assert code == 1
    line = one_error_line(lines, "serve")
    assert "tool 'echo' is offered by backends alpha, beta" in line


async def test_manual_with_two_instances_of_one_server_is_served_once_their_tool_clash_is_resolved(
    tmp_path: Path,
) -> None:
    aggregation = {
        "conflictResolution": "manual",
        "tools": [
            {"workload": "alpha", "filter": ["getenv"]},
            {"workload": "beta", "filter": ["getenv"], "overrides": {"getenv": {"name": "beta_getenv"}}},
        ],
    }
    path = write_config(tmp_path, [stdio_backend("alpha"), stdio_backend("beta")], aggregation=aggregation)
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        client = await connect(http, gateway)
        assert set(await client.tools()) == {"getenv", "beta_getenv"}
        assert await client.text("beta_getenv", name="WHO") == "beta"


# -- selection and renaming -------------------------------------------------------------------------------------------


async def test_filter_exclude_all_and_overrides_shape_the_list_and_a_renamed_tool_reaches_its_original(
    tmp_path: Path,
) -> None:
    aggregation = {
        "tools": [
            {
                "workload": "alpha",
                "filter": ["echo", "read_env"],  # an allow-list may name a tool by its new name
                "overrides": {"getenv": {"name": "read_env", "description": "Read one variable of alpha's env."}},
            },
            {"workload": "beta", "excludeAll": True},
        ]
    }
    path = write_config(tmp_path, [stdio_backend("alpha"), stdio_backend("beta")], aggregation=aggregation)
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        client = await connect(http, gateway)
        tools = await client.tools()
        assert set(tools) == {"alpha_echo", "alpha_read_env"}
        assert tools["alpha_read_env"]["description"] == "Read one variable of alpha's env."
        assert await client.text("alpha_read_env", name="WHO") == "alpha"
        for hidden in ("alpha_getenv", "alpha_whoami", "beta_echo"):
            refused = (await client.call(hidden, text="x")).json()
            assert refused["error"]["message"] == f"Unknown tool: {hidden}"
        prompts = await client.rpc("prompts/list")  # excludeAll hides tools only
        assert "beta_review" in {p["name"] for p in prompts.json()["result"]["prompts"]}


async def test_exclude_all_tools_hides_every_backends_tools_but_not_their_prompts(tmp_path: Path) -> None:
    path = write_config(tmp_path, [stdio_backend("alpha")], aggregation={"excludeAllTools": True})
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        client = await connect(http, gateway)
        assert await client.tools() == {}
        assert (await client.call("alpha_echo", text="x")).json()["error"]["message"] == "Unknown tool: alpha_echo"
        prompts = await client.rpc("prompts/list")
        assert {"alpha_review", "alpha_runbook"} == {p["name"] for p in prompts.json()["result"]["prompts"]}


# -- Cedar on advertised names ----------------------------------------------------------------------------------------

POLICIES = [
    'permit(principal in THVGroup::"sre", action == Action::"call_tool", resource == Tool::"k8s_get_pods");',
    'permit(principal, action == Action::"call_tool", resource == Tool::"ops_echo");',
]


async def test_cedar_on_prefixed_names_shows_and_allows_a_tool_to_one_group_only(tmp_path: Path) -> None:
    calls = tmp_path / "k8s-calls.jsonl"
    async with local_issuer() as issuer:
        incoming = oidc_incoming(issuer, AUDIENCE, POLICIES)
        backends = [stdio_backend("k8s", FIXTURE_CALL_LOG=str(calls)), stdio_backend("ops")]
        path = write_config(tmp_path, backends, incomingAuth=incoming)
        sre = issuer.token(AUDIENCE, sub="sam", groups=["sre"])
        dev = issuer.token(AUDIENCE, sub="dee", groups=["dev"])
        async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
            sam = await connect(http, gateway, sre)
            assert set(await sam.tools()) == {"k8s_get_pods", "ops_echo"}
            assert await sam.text("k8s_get_pods", namespace="prod") == "pods in prod: web-1, web-2"

            dee = await connect(http, gateway, dev)
            assert set(await dee.tools()) == {"ops_echo"}
            assert await dee.text("ops_echo", text="hi") == "hi"
            denied = await dee.call("k8s_get_pods", namespace="prod")
            assert denied.status_code == 403
            assert denied.json()["error"] == {"code": 403, "message": "denied by policy"}
            not_granted = await sam.call("k8s_echo", text="x")  # listed nowhere in the policies: denied to all
            assert not_granted.status_code == 403

            no_token = await http.post(gateway.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert no_token.status_code == 401
        reached = [json.loads(line) for line in calls.read_text().splitlines()]
        assert reached == [{"method": "tools/call", "name": "get_pods"}]  # sam's call only: denials never got there
