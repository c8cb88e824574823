"""The gateway app in process (httpx over ASGI, no sockets, no child process): the pipeline's stages as a client of
the Streamable HTTP front meets them, in front of a scripted backend transport and the real Cedar engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from hivegate.asgi.app import Gateway, GatewaySettings
from hivegate.asgi.streamable import SessionFrontend
from hivegate.authz import CedarAuthorizer, parse_authz_config
from hivegate.authz.gate import McpGate
from hivegate.backends.registry import SessionRegistry
from hivegate.backends.transport import MessageHandler, Transport
from hivegate.core.jsonrpc import Message
from hivegate.core.principal import Principal
from hivegate.errors import invalid_token

pytestmark = pytest.mark.anyio

POLICIES = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"echo");',
    'permit(principal, action == Action::"call_tool", resource == Tool::"calculator");',
    'forbid(principal, action == Action::"call_tool", resource == Tool::"calculator") when { resource.arg_a > 100 };',
]
TOOLS = ["echo", "calculator", "admin_tool"]
VERSION = "2025-06-18"


class ScriptedBackend:
    """A backend transport that answers like a small MCP server and records what reached it."""

    def __init__(self, seen: list[Message]) -> None:
        self._seen = seen
        self._on_message: MessageHandler | None = None
        self._closed = asyncio.Event()

    async def open(self, on_message: MessageHandler) -> None:
        self._on_message = on_message

    async def send(self, message: Message, caller: Any = None) -> None:
        self._seen.append(message)
        if "id" not in message or "method" not in message:
            return
        method, params = message["method"], message.get("params") or {}
        if method == "initialize":
            result: Any = {"protocolVersion": VERSION, "capabilities": {"tools": {}},
                           "serverInfo": {"name": "scripted", "version": "1"}}  # fmt: skip
        elif method == "tools/list":
            result = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in TOOLS]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": json.dumps(params.get("arguments"))}]}
        else:
            result = {}
        assert self._on_message is not None
        self._on_message({"jsonrpc": "2.0", "id": message["id"], "result": result})

    async def wait_closed(self) -> str:
        await self._closed.wait()
        return "closed"

    async def close(self) -> None:
        self._closed.set()


class Tokens:
    """`Bearer <name>` is the principal `<name>`; anything else is refused."""

    requires_token = True
    realm = None
    scopes: tuple[str, ...] = ()
    authorization_servers: tuple[str, ...] = ()
    keys_ready = None

    async def authenticate(self, authorization: str | None) -> Principal:
        if authorization is None or not authorization.startswith("Bearer "):
            raise invalid_token("no token")
        name = authorization.removeprefix("Bearer ")
        return Principal(subject=name, issuer="https://idp.example", kind="jwt", claims={"sub": name})

    async def aclose(self) -> None:
        pass


@dataclass
class Fixed:
    current: CedarAuthorizer


@dataclass
class Client:
    http: httpx.AsyncClient
    seen: list[Message]
    session_id: str = ""

    async def post(self, body: Any, **headers: str) -> httpx.Response:
        sent = {"authorization": "Bearer alice", "accept": "application/json, text/event-stream",
                "content-type": "application/json", "mcp-protocol-version": VERSION}  # fmt: skip
        if self.session_id:
            sent["mcp-session-id"] = self.session_id
        sent.update({k.replace("_", "-"): v for k, v in headers.items()})
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post("http://127.0.0.1/mcp", content=content, headers=sent)

    def calls(self) -> list[str]:
        return [m["params"]["name"] for m in self.seen if m.get("method") == "tools/call"]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    seen: list[Message] = []

    def factory() -> Transport:
        return ScriptedBackend(seen)

    cedar = parse_authz_config({"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES}})
    gate = McpGate(Fixed(CedarAuthorizer.from_config(cedar, "scripted")), listeners=())
    registry = SessionRegistry()
    front = SessionFrontend(name="scripted", factory=factory, registry=registry, request_timeout=5.0, gate=gate)
    app = Gateway(GatewaySettings(endpoints={"/mcp": front.handle}), Tokens())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        c = Client(http, seen)
        init = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        resp = await c.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init})
        assert resp.status_code == 200, resp.text
        c.session_id = resp.headers["mcp-session-id"]
        assert (await c.post({"jsonrpc": "2.0", "method": "notifications/initialized"})).status_code == 202
        yield c
    await registry.close()


def answer(resp: httpx.Response) -> Any:
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        return json.loads([line for line in resp.text.splitlines() if line.startswith("data:")][-1][5:])
    return resp.json()


def call(name: str, arguments: Any, request_id: Any = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


async def test_a_list_shows_only_what_the_caller_may_call(client: Client) -> None:
    resp = await client.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    # calculator is listed: its forbid reads an argument, which a list has not; each call is decided with its own
    assert [t["name"] for t in answer(resp)["result"]["tools"]] == ["echo", "calculator"]


async def test_an_allowed_call_reaches_the_backend_and_a_refused_one_does_not(client: Client) -> None:
    ok = await client.post(call("echo", {"text": "hi"}))
    assert answer(ok)["result"]["content"][0]["text"] == '{"text": "hi"}'
    refused = await client.post(call("admin_tool", {}, 2))
    assert refused.status_code == 403
    assert answer(refused)["error"]["code"] == 403  # ToolHive's code for a denial
    assert client.calls() == ["echo"]


@pytest.mark.parametrize("a", [101, 2**64, 500.0, "500"], ids=["long", "beyond-long", "float", "string"])
async def test_a_forbid_guard_holds_whatever_the_type_of_the_argument(client: Client, a: Any) -> None:
    resp = await client.post(call("calculator", {"a": a, "b": 1}))
    assert resp.status_code == 403
    assert client.calls() == []


async def test_a_request_sent_as_a_notification_is_refused(client: Client) -> None:
    resp = await client.post({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo", "arguments": {}}})
    assert resp.status_code == 400
    assert answer(resp)["error"]["code"] == -32600
    assert client.calls() == []


async def test_malformed_bodies_get_a_json_rpc_error_not_a_traceback(client: Client) -> None:
    deep = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":' + b"[" * 2000
    deep += b"]" * 2000 + b"}}}"
    for body, code in [
        (b"{not json", -32700),
        (deep, -32600),
        (b'{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}', -32600),
    ]:
        resp = await client.post(body)
        assert (resp.status_code, answer(resp)["error"]["code"]) == (400, code), body[:40]
    assert client.calls() == []


async def test_batches_only_under_the_revision_that_has_them(client: Client) -> None:
    batch = [call("echo", {"text": "a"}, 1), call("echo", {"text": "b"}, 2)]
    refused = await client.post(batch)
    assert refused.status_code == 400
    assert answer(refused)["error"]["message"] == f"Invalid Request: MCP revision {VERSION} has no batches"
    accepted = await client.post(batch, mcp_protocol_version="2025-03-26")
    assert accepted.status_code == 200
    assert sorted(a["id"] for a in accepted.json()) == [1, 2]
    whole = await client.post(
        [call("echo", {"text": "a"}, 3), call("admin_tool", {}, 4)], mcp_protocol_version="2025-03-26"
    )
    assert whole.status_code == 403  # one refused request refuses the batch
    assert client.calls() == ["echo", "echo"]


async def test_state_headers_given_twice_are_refused(client: Client) -> None:
    resp = await client.http.post(
        "http://127.0.0.1/mcp",
        content=json.dumps(call("echo", {"text": "x"})).encode(),
        headers=[("authorization", "Bearer alice"), ("content-type", "application/json"),
                 ("accept", "application/json, text/event-stream"),
                 ("mcp-session-id", "someone-elses"), ("mcp-session-id", client.session_id)],
    )  # fmt: skip
    assert resp.status_code == 400
    assert client.calls() == []


async def test_another_caller_cannot_use_the_session(client: Client) -> None:
    resp = await client.post(call("echo", {"text": "x"}), authorization="Bearer mallory")
    assert resp.status_code == 404
    assert client.calls() == []


async def test_no_token_is_a_401_with_a_challenge(client: Client) -> None:
    resp = await client.http.post("http://127.0.0.1/mcp", content=b"{}", headers={"content-type": "application/json"})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
