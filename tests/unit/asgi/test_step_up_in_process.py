"""Per-tool scopes with step-up, as a client of the Streamable HTTP front meets them (in process, over ASGI): a call
whose token lacks a scope the tool requires gets HTTP 403 with the `insufficient_scope` challenge of the MCP
authorization spec, and never reaches the backend; lists still show the tool; a Cedar denial stays a plain 403."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from test_gateway_in_process import VERSION, Client, Fixed, ScriptedBackend, answer, call

from hivegate.asgi.app import Gateway, GatewaySettings
from hivegate.asgi.streamable import SessionFrontend
from hivegate.authz import CedarAuthorizer, parse_authz_config
from hivegate.authz.gate import McpGate
from hivegate.backends.registry import SessionRegistry
from hivegate.backends.transport import Transport
from hivegate.core.jsonrpc import Message
from hivegate.core.principal import Principal
from hivegate.errors import invalid_token

pytestmark = pytest.mark.anyio

POLICIES = [
    "permit(principal, action, resource);",
    'forbid(principal, action == Action::"call_tool", resource == Tool::"admin_tool");',
]
REQUIRED = {'Tool::"calculator"': ["mcp:admin"], 'Tool::"admin_tool"': ["mcp:admin"]}
METADATA_URL = "http://127.0.0.1/.well-known/oauth-protected-resource/mcp"


class ScopedTokens:
    """`Bearer <name>~<scope>~<scope>…`: the principal `<name>` with those scopes in its `scope` claim."""

    requires_token = True
    realm = "https://as.example"
    scopes: tuple[str, ...] = ("openid",)
    authorization_servers: tuple[str, ...] = ("https://as.example",)
    keys_ready = None

    async def authenticate(self, authorization: str | None) -> Principal:
        if authorization is None or not authorization.startswith("Bearer "):
            raise invalid_token("no token")
        name, *scopes = authorization.removeprefix("Bearer ").split("~")
        claims = {"sub": name, "scope": " ".join(scopes)}
        return Principal(subject=name, issuer="https://as.example", kind="jwt", claims=claims)

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    seen: list[Message] = []

    def factory() -> Transport:
        return ScriptedBackend(seen)

    cfg = parse_authz_config(
        {"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES}, "requiredScopes": REQUIRED}
    )
    gate = McpGate(Fixed(CedarAuthorizer.from_config(cfg, "scripted")), listeners=())
    registry = SessionRegistry()
    front = SessionFrontend(name="scripted", factory=factory, registry=registry, request_timeout=5.0, gate=gate)
    settings = GatewaySettings(endpoints={"/mcp": front.handle}, resource_url="http://127.0.0.1/mcp")
    app = Gateway(settings, ScopedTokens())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        c = Client(http, seen)
        init = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        resp = await c.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}, authorization=USER)
        assert resp.status_code == 200, resp.text
        c.session_id = resp.headers["mcp-session-id"]
        yield c
    await registry.close()


USER = "Bearer alice~openid~offline_access"
ADMIN = "Bearer alice~openid~offline_access~mcp:admin"


def challenge_of(resp: httpx.Response) -> dict[str, str]:
    header = resp.headers["www-authenticate"]
    assert header.startswith("Bearer ")
    params = {}
    for part in header.removeprefix("Bearer ").split('", '):
        name, _, value = part.partition("=")
        params[name] = value.strip('"')
    return params


async def test_a_call_without_a_required_scope_gets_the_insufficient_scope_challenge(client: Client) -> None:
    refused = await client.post(call("calculator", {"a": 1, "b": 2}, 7), authorization=USER)
    assert refused.status_code == 403
    assert challenge_of(refused) == {
        "resource_metadata": METADATA_URL,
        "scope": "mcp:admin openid offline_access",  # what the call needs, then what the token has
        "error": "insufficient_scope",
        "error_description": "the token lacks a scope this call needs",
    }
    body = answer(refused)
    assert body["id"] == 7
    assert body["error"]["code"] == 403
    assert "mcp:admin" in body["error"]["message"]
    assert client.calls() == []

    allowed = await client.post(call("calculator", {"a": 1, "b": 2}, 8), authorization=ADMIN)
    assert allowed.status_code == 200, allowed.text
    assert client.calls() == ["calculator"]
    other = await client.post(call("echo", {"text": "hi"}, 9), authorization=USER)  # a tool with no scopes
    assert other.status_code == 200


async def test_the_list_still_shows_a_tool_the_caller_lacks_the_scope_for(client: Client) -> None:
    listed = await client.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, authorization=USER)
    assert "calculator" in [t["name"] for t in answer(listed)["result"]["tools"]]
    assert "admin_tool" not in [t["name"] for t in answer(listed)["result"]["tools"]]  # Cedar forbids it


async def test_a_tool_cedar_forbids_gets_a_plain_denial_whatever_the_scopes(client: Client) -> None:
    for token in (USER, ADMIN):
        refused = await client.post(call("admin_tool", {}, 3), authorization=token)
        assert refused.status_code == 403
        assert "www-authenticate" not in refused.headers  # asking for more scopes would not help
        assert answer(refused)["error"]["message"] == "denied by policy"


async def test_a_batch_with_a_call_lacking_scopes_is_refused_whole_with_the_challenge(client: Client) -> None:
    old = {"mcp_protocol_version": "2025-03-26", "authorization": USER}
    batch: list[Any] = [call("echo", {"text": "a"}, 1), call("calculator", {}, 2)]
    refused = await client.post(batch, **old)
    assert refused.status_code == 403
    assert challenge_of(refused)["scope"] == "mcp:admin openid offline_access"
    assert [reply["id"] for reply in refused.json()] == [2]
    mixed = await client.post([call("admin_tool", {}, 1), call("calculator", {}, 2)], **old)
    assert mixed.status_code == 403
    assert "www-authenticate" not in mixed.headers  # one refusal no scope can lift: no challenge
    assert sorted(reply["id"] for reply in mixed.json()) == [1, 2]
    assert client.calls() == []
