"""An `MCPServer`'s own `oidcConfig` and `authzConfig` behind a virtual MCP server (`vmcp.ownproxy`): the credential
the vMCP sends that backend is verified as its own proxy would, and Cedar decides under the backend's own names
(whatever the vMCP advertises) with the principal of that credential; backends without their own settings are
untouched. In memory: a fake MCP backend, a fake authenticator standing for the backend's OIDC issuer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hivegate.authn.oidc_config import OIDCConfig
from hivegate.authz.policy_config import parse_authz_config
from hivegate.backends.session import BackendSession
from hivegate.backends.transport import MessageHandler, Transport
from hivegate.core.jsonrpc import BACKEND_UNAVAILABLE, Message
from hivegate.core.principal import Principal
from hivegate.errors import AuthenticationError, ConfigError, CredentialRefused
from hivegate.oauth.bearer import extract_bearer
from hivegate.outgoing.caller import Caller
from hivegate.vmcp.ownproxy import OwnProxy
from hivegate.vmcp.pool import BackendPool
from hivegate.vmcp.session import VirtualTransport
from hivegate.vmcp.spec import (
    Aggregation,
    BackendConfig,
    HeaderInjection,
    IncomingAuth,
    OutgoingAuth,
    ServerAuth,
    TokenExchange,
    Unauthenticated,
    UpstreamInject,
    VMCPConfig,
)
from hivegate.vmcp.spec.checks import check_own_auth, sends_bearer
from support.sinks import Sink

pytestmark = pytest.mark.anyio

POLICIES = ['permit(principal in THVGroup::"forecasters", action == Action::"call_tool", resource == Tool::"weather");']
AUTH = ServerAuth(
    OIDCConfig(issuer="https://issuer.example", audience="weather"),
    parse_authz_config({"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES}}),
    "weather.yaml:doc1 MCPServer/weather: spec",
)


class FakeMCP:
    """An MCP server in memory offering the tools it is given; records what reaches it."""

    def __init__(self, tools: tuple[str, ...], received: list[Message]) -> None:
        self.tools = tools
        self.received = received
        self.on_message: MessageHandler | None = None
        self.closed = asyncio.Event()

    async def open(self, on_message: MessageHandler) -> None:
        self.on_message = on_message

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        assert self.on_message is not None
        method, rid = message.get("method"), message.get("id")
        if rid is None or method is None:
            return
        self.received.append(message)
        result: Any = {}
        if method == "initialize":
            result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                      "serverInfo": {"name": "fake", "version": "1"}}  # fmt: skip
        elif method == "tools/list":
            result = {"tools": [{"name": t, "inputSchema": {"type": "object"}} for t in self.tools]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": f"called {message['params']['name']}"}]}
        self.on_message({"jsonrpc": "2.0", "id": rid, "result": result})

    async def wait_closed(self) -> str:
        await self.closed.wait()
        return "closed"

    async def close(self) -> None:
        self.closed.set()


class Issued:
    """Stands for the backend's OIDC issuer: the tokens it issued, and the principal each names."""

    requires_token = True
    keys_ready = None

    def __init__(self, tokens: dict[str, Principal]) -> None:
        self.tokens = tokens
        self.seen: list[str | None] = []

    async def authenticate(self, authorization: str | None) -> Principal:
        self.seen.append(authorization)
        token = extract_bearer(authorization)
        if token not in self.tokens:
            raise AuthenticationError("invalid_token", "Token audience mismatch")
        return self.tokens[token]

    async def aclose(self) -> None:
        return None


class Exchanged:
    """A caller-scoped credential (like a token exchange): the caller's token, as a bearer token."""

    needs_caller = True

    async def headers(self, caller: Caller | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {caller.token}"} if caller is not None and caller.token else {}


def principal(sub: str, *groups: str) -> Principal:
    return Principal(sub, "https://issuer.example", "jwt", {"sub": sub, "groups": list(groups)})


def caller(token: str) -> Caller:
    return Caller(principal(f"vmcp-{token}"), token)


TOKENS = {"t-fay": principal("fay", "forecasters"), "t-gil": principal("gil", "guests")}


class World:
    def __init__(self, conflict: str = "prefix") -> None:
        self.received: dict[str, list[Message]] = {"weather": [], "other": []}
        cfg = VMCPConfig(
            name="team",
            backends=(
                BackendConfig("weather", "stdio", command="x", own_auth=AUTH),
                BackendConfig("other", "stdio", command="y"),
            ),
            incoming_auth=IncomingAuth("oidc", OIDCConfig(issuer="https://vmcp.example", audience="vmcp")),
            aggregation=Aggregation(conflict_resolution=conflict),  # type: ignore[arg-type]
        )
        tools = {"weather": ("weather", "admin_tool"), "other": ("echo",)}
        self.pool = BackendPool(cfg, {n: self._factory(n, tools[n]) for n in tools})
        self.proxy = OwnProxy("weather", AUTH, Exchanged())
        self.issued = Issued(TOKENS)
        self.proxy.authenticator = self.issued

    def _factory(self, name: str, tools: tuple[str, ...]) -> Any:
        def make() -> Transport:
            return FakeMCP(tools, self.received[name])

        return make

    async def session(self) -> BackendSession:
        proxies = {"weather": self.proxy}
        session = BackendSession(lambda: VirtualTransport(self.pool, name="team", proxies=proxies), name="team")
        await session.start()
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        await ask(session, 0, "initialize", init)
        return session

    def calls(self, backend: str) -> list[str]:
        return [m["params"]["name"] for m in self.received[backend] if m.get("method") == "tools/call"]


async def ask(session: BackendSession, rid: Any, method: str, params: Any = None, who: Caller | None = None) -> Message:
    sink = Sink()
    message = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}
    await session.request(message, sink, caller=who)
    return await sink.answer()


def call(name: str) -> dict[str, Any]:
    return {"name": name, "arguments": {}}


@pytest.mark.parametrize(
    ("conflict", "advertised"), [("prefix", "weather_weather"), ("priority", "weather"), ("manual", "weather")]
)
async def test_the_backends_own_policies_decide_under_its_own_names(conflict: str, advertised: str) -> None:
    world = World(conflict)
    await world.pool.start()
    try:
        session = await world.session()
        allowed = await ask(session, 1, "tools/call", call(advertised), caller("t-fay"))
        assert allowed["result"]["content"][0]["text"] == "called weather"
        denied = await ask(session, 2, "tools/call", call(advertised), caller("t-gil"))
        assert denied["error"] == {"code": 403, "message": "denied by policy"}
        assert denied["id"] == 2
        assert world.calls("weather") == ["weather"]  # the refused call never reached the backend
        echo = "other_echo" if conflict == "prefix" else "echo"
        other = await ask(session, 3, "tools/call", call(echo), caller("t-gil"))  # no settings of its own: untouched
        assert other["result"]["content"][0]["text"] == "called echo"
        await session.close()
    finally:
        await world.pool.close()


async def test_lists_show_a_caller_only_what_the_backends_own_policies_let_it_call() -> None:
    world = World()
    await world.pool.start()
    try:
        session = await world.session()
        fay = await ask(session, 1, "tools/list", None, caller("t-fay"))
        assert [t["name"] for t in fay["result"]["tools"]] == ["weather_weather", "other_echo"]
        gil = await ask(session, 2, "tools/list", None, caller("t-gil"))
        assert [t["name"] for t in gil["result"]["tools"]] == ["other_echo"]
        stranger = await ask(session, 3, "tools/list", None, caller("t-unknown"))  # refused: it contributes nothing
        assert [t["name"] for t in stranger["result"]["tools"]] == ["other_echo"]
        await session.close()
    finally:
        await world.pool.close()


async def test_a_credential_the_backends_oidc_config_refuses_is_answered_like_a_backends_401() -> None:
    world = World()
    await world.pool.start()
    try:
        session = await world.session()
        refused = await ask(session, 1, "tools/call", call("weather_weather"), caller("t-unknown"))
        assert refused["error"]["code"] == BACKEND_UNAVAILABLE
        assert refused["error"]["message"] == (
            "backend 'weather' refused the gateway's credential (HTTP 401: Token audience mismatch)"
        )
        nothing = await ask(session, 2, "tools/call", call("weather_weather"), None)  # no caller, so no credential
        assert "refused the gateway's credential" in nothing["error"]["message"]
        assert world.issued.seen[-1] is None
        assert world.calls("weather") == []
        assert world.pool.statuses["weather"].call_failures == 0  # one caller's credential: not the backend's health
        await session.close()
    finally:
        await world.pool.close()


async def test_the_principal_is_the_one_the_backends_credential_names_not_the_vmcp_caller() -> None:
    proxy = OwnProxy("weather", AUTH, Exchanged())
    proxy.authenticator = Issued(TOKENS)
    assert proxy.summary == (
        "backend weather: its own proxy's checks: OIDC issuer https://issuer.example, audience weather; "
        "1 Cedar policies"
    )
    seen = await proxy.principal(caller("t-fay"))
    assert seen.subject == "fay"  # not "vmcp-t-fay", the vMCP's own principal for that caller
    with pytest.raises(CredentialRefused):
        await proxy.principal(caller("t-nobody"))


async def test_authz_without_oidc_decides_for_anonymous_and_the_callers_own_tokens_for_the_embedded_server() -> None:
    anonymous = OwnProxy("weather", ServerAuth(None, AUTH.authz), Exchanged())
    assert (await anonymous.principal(caller("t-fay"))).subject == "anonymous"
    denied = await anonymous.admit({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": call("weather")},
                                   caller("t-fay"), tuple)  # fmt: skip
    assert denied == {"jsonrpc": "2.0", "id": 4, "error": {"code": 403, "message": "denied by policy"}}
    embedded = OwnProxy("weather", AUTH, Exchanged(), callers_own=True)
    who = Caller(principal("fay", "forecasters"), "t-fay")
    assert await embedded.principal(who) is who.principal
    assert await embedded.admit({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": call("weather")},
                                who, tuple) is None  # fmt: skip
    await anonymous.authenticator.aclose()
    await embedded.authenticator.aclose()


@pytest.mark.parametrize(
    ("strategy", "bearer"),
    [
        (Unauthenticated(), False),
        (HeaderInjection("X-API-Key", "k"), False),
        (HeaderInjection("authorization", "Bearer k"), True),
        (HeaderInjection("Authorization", "Basic k"), False),
        (TokenExchange("https://sts.example/token"), True),
        (TokenExchange("https://sts.example/token", external_token_header_name="X-Upstream"), False),
        (UpstreamInject("okta"), True),
    ],
)
def test_which_outgoing_strategies_send_a_token_a_proxy_can_verify(strategy: Any, bearer: bool) -> None:
    assert sends_bearer(strategy) is bearer


def test_a_backend_with_its_own_oidc_and_no_bearer_credential_does_not_load() -> None:
    cfg = VMCPConfig(
        name="team",
        backends=(BackendConfig("weather", "stdio", command="x", own_auth=AUTH),),
        incoming_auth=IncomingAuth("anonymous", OIDCConfig(mode="anonymous")),
        outgoing_auth=OutgoingAuth(backends={"weather": HeaderInjection("X-API-Key", "k")}),
    )
    expected = (
        r"^weather.yaml:doc1 MCPServer/weather: spec: backend 'weather' has its own oidcConfig, .*its outgoing auth "
        r"\(headerInjection\) sends none; give it tokenExchange"
    )
    with pytest.raises(ConfigError, match=expected):
        check_own_auth(cfg)
    check_own_auth(
        VMCPConfig(
            name="team",
            backends=cfg.backends,
            incoming_auth=cfg.incoming_auth,
            outgoing_auth=OutgoingAuth(backends={"weather": HeaderInjection("Authorization", "Bearer k")}),
        )
    )
