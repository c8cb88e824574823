"""Cedar authorization through a running `hivegate run`: the docs' policy examples verbatim, real signed tokens.

Every policy text of seeds/001 ("Set up authorization", step 1) and seeds/002 ("Cedar quick reference") goes into a
ToolHive-format config file for a real gateway; callers with tokens minted by a real JWKS issuer (or the npm
`oidc-provider`) use the real MCP SDK client. Permitted calls succeed, the others get 403 and never reach the
backend (the fixture's call log proves it), and list answers only show what the caller may use, on every front:
Streamable HTTP over a stdio server (JSON and SSE answers), legacy SSE, and the reverse proxy (JSON and SSE).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from e2e.oidc_provider import start_oidc_provider, web_client
from support.backend import fixture_http_server, free_port
from support.gateway import RunningGateway, fixture_command, hivegate_run
from support.issuer import LocalIssuer, local_issuer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

# seeds/001, "Set up authorization", step 1 (JSON-escaped in the doc; the same text here)
SEED_001 = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"weather");',
    'permit(principal == Client::"alice123", action == Action::"call_tool", resource == Tool::"admin_tool");',
    'permit(principal, action == Action::"call_tool", resource) when { principal.claim_roles.contains("premium") };',
    'permit(principal, action == Action::"call_tool", resource == Tool::"calculator") when { resource.arg_operation'
    ' == "add" || resource.arg_operation == "subtract" };',
]
# seeds/002, "Cedar quick reference", the six rows in the table's order
ALLOW_GROUP_ALL = 'permit(principal in THVGroup::"mcp-developers", action, resource);'
ALLOW_USER = 'permit(principal == Client::"user@example.com", action == Action::"call_tool", resource);'
ALLOW_CLAIM = (
    'permit(principal, action == Action::"call_tool", resource) when { principal.claim_roles.contains("admin") };'
)
RESTRICT_ONE = (
    'permit(principal in THVGroup::"mcp-platform", action == Action::"call_tool", resource == Tool::"get_pods");'
)
DENY_ONE = 'forbid(principal in THVGroup::"mcp-developers", action == Action::"call_tool", resource == Tool::"delete_namespace");'  # noqa: E501 (verbatim)
ADMIN = 'permit(principal in THVGroup::"mcp-admin", action, resource);'
SEED_002 = [ALLOW_GROUP_ALL, ALLOW_USER, ALLOW_CLAIM, RESTRICT_ONE, DENY_ONE, ADMIN]

AUDIENCE = "hivegate-authz"
ACCEPT = {"Accept": "application/json, text/event-stream"}
DENIED = {"code": 403, "message": "denied by policy"}
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
ALL_TOOLS = {
    "echo", "whoami", "slow", "progress", "log", "headers", "getenv", "open_sockets", "stderr_flood", "crash",
    "weather", "admin_tool", "calculator", "get_pods", "delete_namespace", "list_namespaces",
}  # fmt: skip
ALL_PROMPTS = {"review", "runbook"}
ALL_RESOURCES = {"docs://readme", "k8s://pods"}
ALL_TEMPLATES = {"k8s://namespaces/{namespace}"}


# -- helpers (test_authz_reload.py uses them too) ----------------------------------------------------------------------


def write_authz(path: Path, policies: Sequence[str]) -> Path:
    """Write a ToolHive cedarv1 config (YAML for .yaml/.yml, else JSON) atomically, so a watcher never sees half."""
    doc = {"version": "1.0", "type": "cedarv1", "cedar": {"policies": list(policies), "entities_json": "[]"}}
    text = yaml.safe_dump(doc, sort_keys=False) if path.suffix in (".yaml", ".yml") else json.dumps(doc, indent=2)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


class CallLog:
    """The calls that reached the fixture server (its FIXTURE_CALL_LOG file), as `(method, name)` pairs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def env(self) -> dict[str, str]:
        return {"FIXTURE_CALL_LOG": str(self.path)}

    @property
    def flags(self) -> list[str]:
        """`hivegate run` flags handing the log file to a stdio child."""
        return ["-e", f"FIXTURE_CALL_LOG={self.path}"]

    def calls(self) -> list[tuple[str, str]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [(entry["method"], entry["name"]) for entry in map(json.loads, lines)]

    def tools(self) -> list[str]:
        return sorted(name for method, name in self.calls() if method == "tools/call")


def oidc_flags(issuer: LocalIssuer) -> list[str]:
    return [
        "--oidc-issuer", issuer.url, "--oidc-audience", AUDIENCE, "--oidc-jwks-url", issuer.jwks_url,
        "--oidc-insecure-allow-http", "--jwks-allow-private-ip",
    ]  # fmt: skip


@asynccontextmanager
async def sdk_client(url: str, token: str, *, legacy_sse: bool = False) -> AsyncIterator[Client]:
    """The official SDK client, as a caller holding `token`."""
    auth = {"Authorization": f"Bearer {token}"}
    if legacy_sse:
        async with Client(sse_client(url, headers=auth), mode="legacy") as client:
            yield client
        return
    async with (
        httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        yield client


async def denied(call: Awaitable[object]) -> None:
    """The SDK client got the gateway's denial (JSON-RPC error 403 "denied by policy")."""
    with pytest.raises(MCPError) as caught:
        await call
    assert (caught.value.code, caught.value.message) == (403, "denied by policy")


def text_of(result: Any) -> str:
    return str(result.content[0].text)


async def visible(client: Client) -> dict[str, set[str]]:
    """Everything the four list methods show this caller."""
    tools = await client.list_tools(cache_mode="bypass")
    prompts = await client.list_prompts(cache_mode="bypass")
    resources = await client.list_resources(cache_mode="bypass")
    templates = await client.list_resource_templates(cache_mode="bypass")
    return {
        "tools": {t.name for t in tools.tools},
        "prompts": {p.name for p in prompts.prompts},
        "resources": {str(r.uri) for r in resources.resources},
        "templates": {t.uri_template for t in templates.resource_templates},
    }


def sees(
    tools: Iterable[str], prompts: Iterable[str] = (), resources: Iterable[str] = (), templates: Iterable[str] = ()
) -> dict[str, set[str]]:
    """What a caller should see in the four lists."""
    return {"tools": set(tools), "prompts": set(prompts), "resources": set(resources), "templates": set(templates)}


EVERYTHING = sees(ALL_TOOLS, ALL_PROMPTS, ALL_RESOURCES, ALL_TEMPLATES)
NOTHING = sees(set())


def sse_messages(body: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an event-stream body (one `data:` line per event, as the gateway writes them)."""
    return [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:")]


class RawClient:
    """Hand-written Streamable HTTP requests, to assert status codes and bodies byte for byte."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self.http = http
        self.url = url
        self.headers = {**ACCEPT, "Authorization": f"Bearer {token}"}
        self.session: str | None = None
        self._ids = 100

    async def initialize(self) -> None:
        resp = await self.post(INIT)
        assert resp.status_code == 200, resp.text
        self.session = resp.headers["mcp-session-id"]
        ack = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert ack.status_code == 202

    async def post(self, message: Any) -> httpx.Response:
        headers = dict(self.headers)
        if self.session is not None:
            headers["Mcp-Session-Id"] = self.session
        resp = await self.http.post(self.url, json=message, headers=headers)
        assert "Traceback" not in resp.text
        return resp

    async def request(self, method: str, params: Any = None) -> tuple[int, httpx.Response]:
        """Send a request with a fresh id; returns the id and the response."""
        self._ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._ids, "method": method}
        if params is not None:
            message["params"] = params
        return self._ids, await self.post(message)

    async def refused(self, method: str, params: Any = None) -> None:
        """The request was denied: HTTP 403 with exactly ToolHive's JSON-RPC error."""
        rid, resp = await self.request(method, params)
        assert resp.status_code == 403, resp.text
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json() == {"jsonrpc": "2.0", "id": rid, "error": DENIED}

    async def invalid(self, method: str, params: Any, why: str) -> None:
        """The request was too malformed to decide: HTTP 400 with JSON-RPC -32602 naming `why`."""
        rid, resp = await self.request(method, params)
        assert resp.status_code == 400, resp.text
        body = resp.json()
        assert (body["id"], body["error"]["code"]) == (rid, -32602)
        assert why in body["error"]["message"]


def no_traceback(gw: RunningGateway) -> None:
    assert not any("Traceback" in line for line in gw.stderr), "\n".join(gw.stderr)


@asynccontextmanager
async def stdio_gateway(
    tmp_path: Path, policies: Sequence[str], *extra: str, suffix: str = ".json"
) -> AsyncIterator[tuple[RunningGateway, LocalIssuer, CallLog]]:
    """A gateway with `policies` over the stdio fixture, OIDC from a local issuer, the fixture logging its calls."""
    log = CallLog(tmp_path / "calls.jsonl")
    config = write_authz(tmp_path / f"authz{suffix}", policies)
    async with local_issuer() as issuer:
        args = [*oidc_flags(issuer), "--authz-config", str(config), *extra, *log.flags, *fixture_command()]
        async with hivegate_run(args) as gw:
            yield gw, issuer, log
            no_traceback(gw)


@asynccontextmanager
async def http_fixture(mode: str, env: dict[str, str]) -> AsyncIterator[str]:
    """The fixture as a remote Streamable HTTP server (`--http`: SSE answers, `--http-json`: JSON answers)."""
    async with fixture_http_server(mode, env=env) as url:
        yield url


# -- seeds/001 ---------------------------------------------------------------------------------------------------------


async def test_seed_001_policies_on_the_streamable_front(tmp_path: Path) -> None:
    async with stdio_gateway(tmp_path, SEED_001) as (gw, issuer, log):
        # an Okta-style token: groups, no `roles` claim (the premium policy errors for it and is skipped)
        bob = issuer.token(AUDIENCE, sub="bob", groups=["Everyone"])
        async with sdk_client(gw.url, bob) as client:
            # calculator is not listed: without arguments `resource.arg_operation` does not exist
            assert await visible(client) == sees({"weather"})
            assert text_of(await client.call_tool("weather", {"city": "Oslo"})) == "sunny in Oslo"
            assert text_of(await client.call_tool("calculator", {"operation": "add", "a": 2, "b": 3})) == "5"
            assert text_of(await client.call_tool("calculator", {"operation": "subtract", "a": 5, "b": 3})) == "2"
            await denied(client.call_tool("calculator", {"operation": "multiply", "a": 2, "b": 3}))
            await denied(client.call_tool("admin_tool", {}))
            await denied(client.get_prompt("review", {}))
            await denied(client.read_resource("docs://readme"))
        # alice123 may use the admin tool, nobody else may
        async with sdk_client(gw.url, issuer.token(AUDIENCE, sub="alice123")) as client:
            assert await visible(client) == sees({"weather", "admin_tool"})
            assert text_of(await client.call_tool("admin_tool", {})) == "admin done"
            await denied(client.call_tool("get_pods", {}))
        # an Entra-style token: roles; premium calls any tool, but only tools
        dana = issuer.token(AUDIENCE, sub="dana", roles=["premium"])
        async with sdk_client(gw.url, dana) as client:
            assert await visible(client) == sees(ALL_TOOLS)
            assert text_of(await client.call_tool("delete_namespace", {"namespace": "prod"})) == "deleted prod"
            assert text_of(await client.call_tool("calculator", {"operation": "multiply", "a": 2, "b": 3})) == "6"
            await denied(client.get_prompt("runbook", {}))
        async with sdk_client(gw.url, issuer.token(AUDIENCE, sub="erin", roles=["basic"])) as client:
            assert (await visible(client))["tools"] == {"weather"}
            await denied(client.call_tool("get_pods", {}))

        async with httpx.AsyncClient(timeout=30) as http:
            raw = RawClient(http, gw.url, bob)
            # refused before any session exists: the gateway decides without starting a backend
            await raw.refused("tools/call", {"name": "admin_tool", "arguments": {}})
            await raw.initialize()
            await raw.refused(
                "tools/call", {"name": "calculator", "arguments": {"operation": "divide", "a": 1, "b": 1}}
            )
            # a JSON answer, filtered
            _, resp = await raw.request("tools/list")
            assert resp.headers["content-type"].startswith("application/json")
            assert [t["name"] for t in resp.json()["result"]["tools"]] == ["weather"]
            # an SSE answer (the backend reports progress first), filtered just the same
            rid, resp = await raw.request("tools/list", {"_meta": {"progressToken": "list-1"}})
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = sse_messages(resp.text)
            assert events[0]["method"] == "notifications/progress"
            assert events[-1]["id"] == rid
            assert [t["name"] for t in events[-1]["result"]["tools"]] == ["weather"]
            # a permitted call answered over SSE
            rid, resp = await raw.request(
                "tools/call",
                {
                    "name": "calculator",
                    "arguments": {"operation": "add", "a": 1, "b": 1},
                    "_meta": {"progressToken": 1},
                },
            )
            assert resp.status_code == 200
            answer = (
                sse_messages(resp.text)[-1]
                if resp.headers["content-type"].startswith("text/event-stream")
                else resp.json()
            )
            assert answer["result"]["content"][0]["text"] == "2"

        # only the permitted calls reached the server
        assert log.tools() == sorted(
            ["weather", "calculator", "calculator", "admin_tool", "delete_namespace", "calculator", "calculator"]
        )
        assert all(method == "tools/call" for method, _ in log.calls())


# -- seeds/002 ---------------------------------------------------------------------------------------------------------


async def test_seed_002_quick_reference_on_the_streamable_front(tmp_path: Path) -> None:
    async with stdio_gateway(tmp_path, SEED_002, suffix=".yaml") as (gw, issuer, log):

        def okta(sub: str, *groups: str) -> str:
            return issuer.token(AUDIENCE, sub=sub, groups=list(groups))

        def entra(sub: str, *roles: str) -> str:
            return issuer.token(AUDIENCE, sub=sub, roles=list(roles))

        # Allow a group all tools (and prompts and resources) ... but Deny a group one tool
        async with sdk_client(gw.url, okta("00u1dev", "mcp-developers", "Everyone")) as client:
            assert await visible(client) == {**EVERYTHING, "tools": ALL_TOOLS - {"delete_namespace"}}
            assert text_of(await client.call_tool("get_pods", {})) == "pods in default: web-1, web-2"
            await denied(client.call_tool("delete_namespace", {"namespace": "prod"}))
            prompt = await client.get_prompt("runbook", {"service": "api"})
            assert "Runbook for api" in prompt.messages[0].content.text  # type: ignore[union-attr]
            read = await client.read_resource("k8s://namespaces/prod")
            assert read.contents[0].text == "namespace prod"  # type: ignore[union-attr]
        # Allow a specific user: every tool, nothing else
        async with sdk_client(gw.url, okta("user@example.com")) as client:
            assert await visible(client) == sees(ALL_TOOLS)
            assert text_of(await client.call_tool("delete_namespace", {"namespace": "dev"})) == "deleted dev"
            await denied(client.get_prompt("review", {}))
            await denied(client.read_resource("docs://readme"))
        # Allow by claim value (Entra ID's `roles`)
        async with sdk_client(gw.url, entra("ops", "admin", "reader")) as client:
            assert (await visible(client))["tools"] == ALL_TOOLS
            assert text_of(await client.call_tool("admin_tool", {})) == "admin done"
        # Restrict to one tool
        async with sdk_client(gw.url, okta("00u1plat", "mcp-platform")) as client:
            assert await visible(client) == sees({"get_pods"})
            assert text_of(await client.call_tool("get_pods", {"namespace": "kube-system"})).startswith("pods in kube")
            await denied(client.call_tool("delete_namespace", {"namespace": "kube-system"}))
            await denied(client.call_tool("echo", {"text": "hi"}))
        # Admin escape hatch
        async with sdk_client(gw.url, okta("00u1root", "mcp-admin")) as client:
            assert await visible(client) == EVERYTHING
            assert text_of(await client.call_tool("delete_namespace", {"namespace": "old"})) == "deleted old"
            assert (await client.read_resource("docs://readme")).contents[0].text == "read me"  # type: ignore[union-attr]
        # ... which does not beat the forbid for someone who is also a developer
        async with sdk_client(gw.url, okta("00u1both", "mcp-developers", "mcp-admin")) as client:
            assert (await visible(client))["tools"] == ALL_TOOLS - {"delete_namespace"}
            await denied(client.call_tool("delete_namespace", {"namespace": "old"}))
        # in no permitted group (and a reader role is no admin): nothing listed, nothing callable
        for token in (okta("00u1sales", "mcp-sales", "Everyone"), entra("reader", "reader")):
            async with sdk_client(gw.url, token) as client:
                assert await visible(client) == NOTHING
                await denied(client.call_tool("weather", {}))
                await denied(client.get_prompt("review", {}))
                await denied(client.read_resource("k8s://pods"))

        async with httpx.AsyncClient(timeout=30) as http:
            raw = RawClient(http, gw.url, okta("00u1plat", "mcp-platform"))
            await raw.refused("tools/call", {"name": "delete_namespace", "arguments": {"namespace": "x"}})
            await raw.refused("prompts/get", {"name": "review"})
            await raw.refused("resources/read", {"uri": "docs://readme"})
            await raw.refused("resources/subscribe", {"uri": "docs://readme"})

        assert log.tools() == sorted(["get_pods", "get_pods", "delete_namespace", "admin_tool", "delete_namespace"])
        assert sorted(log.calls()) == sorted(
            [
                *(("tools/call", name) for name in log.tools()),
                ("prompts/get", "runbook"),
                ("resources/read", "k8s://namespaces/prod"),
                ("resources/read", "docs://readme"),
            ]
        )


# -- the other fronts --------------------------------------------------------------------------------------------------


async def test_legacy_sse_front_delivers_denials_on_the_stream(tmp_path: Path) -> None:
    async with stdio_gateway(tmp_path, SEED_002, "--proxy-mode", "sse") as (gw, issuer, log):
        assert gw.url.endswith("/sse")
        platform = issuer.token(AUDIENCE, sub="00u1plat", groups=["mcp-platform"])
        async with sdk_client(gw.url, platform, legacy_sse=True) as client:
            assert await visible(client) == sees({"get_pods"})
            assert text_of(await client.call_tool("get_pods", {})).startswith("pods in default")
            await denied(client.call_tool("delete_namespace", {"namespace": "prod"}))
            await denied(client.get_prompt("review", {}))
            await denied(client.read_resource("k8s://pods"))
            # the session carries on after denials
            assert text_of(await client.call_tool("get_pods", {"namespace": "a"})) == "pods in a: web-1, web-2"
        developer = issuer.token(AUDIENCE, sub="00u1dev", groups=["mcp-developers"])
        async with sdk_client(gw.url, developer, legacy_sse=True) as client:
            assert await visible(client) == {**EVERYTHING, "tools": ALL_TOOLS - {"delete_namespace"}}
            await denied(client.call_tool("delete_namespace", {"namespace": "prod"}))
            assert text_of(await client.call_tool("weather", {})) == "sunny in Berlin"

        # on the wire: the POST is accepted (202), the refusal arrives on the client's event stream
        headers = {"Authorization": f"Bearer {platform}"}
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("GET", gw.url, headers={**headers, "Accept": "text/event-stream"}) as stream,
        ):
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            endpoint = await _next_data(lines)
            assert endpoint.startswith("/messages?session_id=")
            post_url = gw.base + endpoint
            call = {"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {"name": "delete_namespace"}}
            resp = await http.post(post_url, json=call, headers=headers)
            assert (resp.status_code, resp.text) == (202, "Accepted")
            assert json.loads(await _next_data(lines)) == {"jsonrpc": "2.0", "id": 41, "error": DENIED}
            bad = {"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {"name": "get_pods", "arguments": [1]}}
            resp = await http.post(post_url, json=bad, headers=headers)
            assert resp.status_code == 202
            error = json.loads(await _next_data(lines))
            assert (error["id"], error["error"]["code"]) == (42, -32602)
            assert "Traceback" not in json.dumps(error)

        assert log.tools() == ["get_pods", "get_pods", "weather"]


async def _next_data(lines: AsyncIterator[str]) -> str:
    with anyio.fail_after(15):
        async for line in lines:
            if line.startswith("data:"):
                return line[5:].strip()
    raise AssertionError("event stream ended")


@pytest.mark.parametrize("mode", ["--http", "--http-json"])
async def test_reverse_proxy_filters_json_and_sse_answers(tmp_path: Path, mode: str) -> None:
    log = CallLog(tmp_path / "calls.jsonl")
    config = write_authz(tmp_path / "authz.json", SEED_002)
    async with local_issuer() as issuer, http_fixture(mode, log.env) as backend:
        async with hivegate_run([*oidc_flags(issuer), "--authz-config", str(config), backend]) as gw:
            platform = issuer.token(AUDIENCE, sub="00u1plat", groups=["mcp-platform"])
            async with sdk_client(gw.url, platform) as client:
                assert await visible(client) == sees({"get_pods"})
                assert text_of(await client.call_tool("get_pods", {})).startswith("pods in default")
                await denied(client.call_tool("delete_namespace", {"namespace": "prod"}))
                await denied(client.get_prompt("review", {}))
                await denied(client.read_resource("docs://readme"))
            developer = issuer.token(AUDIENCE, sub="00u1dev", groups=["mcp-developers"])
            async with sdk_client(gw.url, developer) as client:
                assert await visible(client) == {**EVERYTHING, "tools": ALL_TOOLS - {"delete_namespace"}}
                await denied(client.call_tool("delete_namespace", {"namespace": "prod"}))
                assert (await client.read_resource("docs://readme")).contents[0].text == "read me"  # type: ignore[union-attr]

            async with httpx.AsyncClient(timeout=30) as http:
                raw = RawClient(http, gw.url, platform)
                await raw.refused("tools/call", {"name": "delete_namespace", "arguments": {}})
                await raw.refused("tasks/list")
                await raw.invalid("tools/call", {"name": "get_pods", "arguments": [1]}, "must be an object")
                await raw.initialize()
                rid, resp = await raw.request("tools/list", {"_meta": {"progressToken": "p"}})
                assert resp.status_code == 200
                if mode == "--http":  # relayed event by event, the list answer rewritten on the way
                    assert resp.headers["content-type"].startswith("text/event-stream")
                    events = sse_messages(resp.text)
                    assert events[0]["method"] == "notifications/progress"
                    answer = events[-1]
                else:
                    assert resp.headers["content-type"].startswith("application/json")
                    answer = resp.json()
                assert answer["id"] == rid
                assert [t["name"] for t in answer["result"]["tools"]] == ["get_pods"]
                _, resp = await raw.request("resources/templates/list")
                body = sse_messages(resp.text)[-1] if mode == "--http" else resp.json()
                assert body["result"]["resourceTemplates"] == []
                # a key twice: the policies would see one value and the backend perhaps the other; refused
                smuggled = b'{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"name":"delete_namespace",'
                smuggled += b'"name":"get_pods","arguments":{}}}'
                resp = await http.post(
                    gw.url, content=smuggled, headers={**raw.headers, "Mcp-Session-Id": raw.session or ""}
                )
                assert resp.status_code == 400
                assert resp.json()["id"] == 77
                assert resp.json()["error"]["code"] == -32600
                assert "'name' appears twice in one object" in resp.json()["error"]["message"]
            no_traceback(gw)
        assert log.calls() == [("tools/call", "get_pods"), ("resources/read", "docs://readme")]


async def test_a_real_idp_groups_claim_drives_the_group_policies(tmp_path: Path) -> None:
    """npm oidc-provider puts the account's `groups` in its access tokens; THVGroup parents come from them."""
    redirect = "http://127.0.0.1:9/callback"
    accounts = {
        "alice": {"email": "alice@example.com", "name": "Alice", "groups": ["mcp-developers"]},
        "carol": {"email": "carol@example.com", "name": "Carol", "groups": ["sales"]},
    }
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    log = CallLog(tmp_path / "calls.jsonl")
    config = write_authz(tmp_path / "authz.json", [ALLOW_GROUP_ALL, DENY_ONE])
    async with start_oidc_provider(clients=[web_client("mcp-client", [redirect])], accounts=accounts) as idp:
        args = [
            "--port", str(port), "--oidc-issuer", idp.issuer, "--oidc-audience", resource, "--resource-url", resource,
            "--oidc-insecure-allow-http", "--jwks-allow-private-ip", "--authz-config", str(config), *log.flags,
            *fixture_command(),
        ]  # fmt: skip
        async with hivegate_run(args) as gw:
            alice = (await idp.authorization_code_token("mcp-client", redirect, resource=resource))["access_token"]
            carol = (await idp.authorization_code_token("mcp-client", redirect, resource=resource, login_hint="carol"))[
                "access_token"
            ]
            async with sdk_client(gw.url, alice) as client:
                assert await visible(client) == {**EVERYTHING, "tools": ALL_TOOLS - {"delete_namespace"}}
                assert text_of(await client.call_tool("get_pods", {})).startswith("pods in default")
                await denied(client.call_tool("delete_namespace", {"namespace": "prod"}))
            async with sdk_client(gw.url, carol) as client:
                assert await visible(client) == NOTHING
                await denied(client.call_tool("get_pods", {}))
            no_traceback(gw)
    assert log.calls() == [("tools/call", "get_pods")]


# -- beyond the seeds: annotations, prompt and resource rules, bad input -----------------------------------------------

EXTRA = [
    'permit(principal, action == Action::"call_tool", resource) when { resource has readOnlyHint && resource.readOnlyHint };',  # noqa: E501
    'permit(principal, action == Action::"call_tool", resource == Tool::"calculator");',
    'permit(principal, action == Action::"get_prompt", resource == Prompt::"runbook");',
    'permit(principal, action == Action::"read_resource", resource) when { resource.uri like "k8s://namespaces/*" };',
]


async def test_annotations_prompts_resources_and_bad_input(tmp_path: Path) -> None:
    async with stdio_gateway(tmp_path, EXTRA) as (gw, issuer, log):
        token = issuer.token(AUDIENCE, sub="bob", groups=["Everyone"])
        async with sdk_client(gw.url, token) as client:
            assert await visible(client) == sees(
                {"list_namespaces", "calculator"}, {"runbook"}, set(), {"k8s://namespaces/{namespace}"}
            )
            # readOnlyHint, learnt from the tools/list answer, decides the call
            assert text_of(await client.call_tool("list_namespaces", {})) == "default, kube-system"
            await denied(client.call_tool("delete_namespace", {"namespace": "x"}))
            assert "Runbook for web" in (await client.get_prompt("runbook", {})).messages[0].content.text  # type: ignore[union-attr]
            await denied(client.get_prompt("review", {}))
            assert (await client.read_resource("k8s://namespaces/dev")).contents[0].text == "namespace dev"  # type: ignore[union-attr]
            await denied(client.read_resource("k8s://pods"))
            # after every refusal the session still works
            assert text_of(await client.call_tool("calculator", {"operation": "multiply", "a": 6, "b": 7})) == "42"

        async with httpx.AsyncClient(timeout=30) as http:
            raw = RawClient(http, gw.url, token)
            await raw.initialize()
            calc = "calculator"
            await raw.invalid("tools/call", {"name": calc, "arguments": [1, 2]}, "must be an object, got an array")
            await raw.invalid("tools/call", {"name": calc, "arguments": "add"}, "must be an object, got a string")
            huge = {"operation": "add", "a": 1, "b": 2, "blob": list(range(5000))}
            await raw.invalid("tools/call", {"name": calc, "arguments": huge}, "arguments too large")
            await raw.invalid("tools/call", {"arguments": {}}, "params.name")
            await raw.invalid("tools/call", [calc], "params.name")
            await raw.invalid("resources/read", {"uri": 5}, "params.uri")
            await raw.invalid("prompts/get", {"name": "runbook", "arguments": [1]}, "must be an object")
            # methods the gateway cannot decide are refused
            await raw.refused("tasks/list")
            await raw.refused("tasks/get", {"taskId": "1"})
            await raw.refused("elicitation/create", {"message": "hi", "requestedSchema": {}})
            await raw.refused("completion/complete", {"ref": {"type": "ref/prompt", "name": "review"}, "argument": {}})
            # a batch with a refused request is refused whole, nothing of it forwarded
            batch = [
                {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_namespace"}},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "admin_tool"}},
            ]
            resp = await raw.post(batch)
            assert resp.status_code == 403
            assert resp.json() == [{"jsonrpc": "2.0", "id": i, "error": DENIED} for i in (1, 2)]
            # and the gateway still answers
            _, resp = await raw.request("ping")
            assert resp.status_code == 200

        assert log.calls() == [
            ("tools/call", "list_namespaces"),
            ("prompts/get", "runbook"),
            ("resources/read", "k8s://namespaces/dev"),
            ("tools/call", "calculator"),
        ]


# -- broken config files stop start-up ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "authz.json",
            json.dumps(
                {
                    "version": "1.0",
                    "type": "cedarv1",
                    "cedar": {
                        "policies": [SEED_001[0], 'permit(principal,\n  action == Action::"call_tool"\n  resource);']
                    },
                }
            ),
            "cedar.policies[1], line 3, column 3:",
        ),
        (
            "authz.yaml",
            "version: '1.0'\ntype: cedarv2\ncedar:\n  policies: ['permit(principal, action, resource);']\n",
            "type must be 'cedarv1', got 'cedarv2'",
        ),
        (
            "authz.yaml",
            "type: cedarv1\ncedar:\n  policies: ['permit(principal, action, resource);']\n",
            "version is required",
        ),
    ],
    ids=["bad-policy", "unknown-type", "no-version"],
)
async def test_a_broken_policy_file_stops_start_up(tmp_path: Path, name: str, content: str, expected: str) -> None:
    config = tmp_path / name
    config.write_text(content)
    argv = [sys.executable, "-m", "hivegate", "run", "--foreground", "--authz-config", str(config), *fixture_command()]
    with anyio.fail_after(60):
        proc = await anyio.run_process(argv, check=False)
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert proc.stdout == b""
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("hivegate run: error: ")
    assert expected in stderr
