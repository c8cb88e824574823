"""`upstreamInject` when the stored upstream access token has expired and refreshing it fails: the upstream refusing
the refresh token (`invalid_grant`, or there is none) means the user must log in again (`LoginRequired`, HTTP 401);
the upstream being unreachable (closed port, timeout, HTTP 5xx, `temporarily_unavailable`) fails that call alone
(`OutgoingAuthError`, a JSON-RPC error naming the provider), the login being still good.

The whole chain is real: the authorization server's session store, an `oauth2` upstream and its token endpoint on a
local HTTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.service import UPSTREAM_TRANSIENT, AuthorizationServer
from hivegate.authserver.settings import AuthServerConfig, UpstreamConfig, UserInfoConfig
from hivegate.authserver.upstream.base import UpstreamError, UpstreamTokens
from hivegate.authserver.upstream.oauth2 import OAuth2Upstream
from hivegate.core.principal import Principal
from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.outgoing import Caller, LoginRequired, OutgoingAuthError, UpstreamToken
from hivegate.outgoing.credentials import upstream_subject
from hivegate.storage.memory import MemoryStore
from support.webserver import serve_on_loopback

pytestmark = pytest.mark.anyio

SESSION = "sess-1"
EXPIRED_AT = "expired-upstream-at"
REFRESH = "upstream-rt-secret"


class NoClients:
    async def get(self, client_id: str) -> None:
        return None

    async def register(self, metadata: Any, *, remote: str) -> Any:
        raise NotImplementedError


@dataclass
class TokenEndpoint:
    url: str = ""
    reply: tuple[int, dict[str, Any]] = (200, {})
    delay: float = 0.0
    forms: list[dict[str, str]] = field(default_factory=list)


@asynccontextmanager
async def token_endpoint() -> AsyncIterator[TokenEndpoint]:
    state = TokenEndpoint()

    async def token(request: web.Request) -> web.Response:
        state.forms.append({k: str(v) for k, v in (await request.post()).items()})
        await asyncio.sleep(state.delay)
        status, body = state.reply
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/token", token)
    async with serve_on_loopback(app) as base:
        state.url = f"{base}/token"
        yield state


@asynccontextmanager
async def gateway(
    token_url: str, *, refresh_token: str | None = REFRESH, timeout: float = 10.0
) -> AsyncIterator[AuthorizationServer]:
    """An authorization server whose session `SESSION` holds an expired access token from upstream `corp`, fetching
    with `timeout` (long by default: only the timeout test is about it, and a busy machine can stall a connect)."""
    upstream_cfg = UpstreamConfig(
        "corp",
        "oauth2",
        "cid",
        client_secret="client-secret-zzz",
        authorization_endpoint="http://127.0.0.1:1/authorize",
        token_endpoint=token_url,
        user_info=UserInfoConfig("http://127.0.0.1:1/userinfo"),
    )
    cfg = AuthServerConfig(issuer="https://mcp.example.com", upstreams=(upstream_cfg,))
    http = GuardedHTTPClient(allow_http=True, allow_private=True, timeout=timeout)
    store = MemoryStore()
    server = AuthorizationServer(
        cfg,
        keys=SigningKeys.from_pems([]),
        hmac_keys=HMACKeys.from_config([b"k" * 32]),
        store=store,
        clients=NoClients(),
        upstreams=[OAuth2Upstream(upstream_cfg, http)],
        audiences=["https://mcp.example.com/mcp"],
    )
    expired = UpstreamTokens(EXPIRED_AT, refresh_token=refresh_token, expires_at=time.time() - 60)
    await store.put("session", SESSION, {"upstream_tokens": {"corp": expired.to_record()}}, 600)
    try:
        yield server
    finally:
        await http.aclose()


def caller() -> Caller:
    return Caller(Principal("alice", "https://mcp.example.com", "jwt", {"sub": "alice", "tsid": SESSION}), "at-1")


def no_secret_in(message: str) -> None:
    for secret in (EXPIRED_AT, REFRESH, "client-secret-zzz", "at-1"):
        assert secret not in message


async def test_a_refreshed_token_is_injected() -> None:
    async with token_endpoint() as idp:
        idp.reply = (200, {"access_token": "fresh-at", "token_type": "Bearer", "expires_in": 3600})
        async with gateway(idp.url) as server:
            inject = UpstreamToken(server.upstream_tokens, "corp")
            assert await inject.headers(caller()) == {"Authorization": "Bearer fresh-at"}
            assert idp.forms[0]["refresh_token"] == REFRESH
            stored = await server.upstream_tokens(SESSION, "corp")  # kept: no second refresh
            assert stored is not None
            assert stored.access_token == "fresh-at"
            assert len(idp.forms) == 1


@pytest.mark.parametrize(
    "reply",
    [
        (400, {"error": "invalid_grant", "error_description": "refresh token expired"}),
        (401, {"error": "invalid_grant"}),
        (200, {"error": "invalid_grant"}),  # GitHub answers errors with HTTP 200
    ],
)
async def test_a_refused_refresh_token_means_logging_in_again(reply: tuple[int, dict[str, Any]]) -> None:
    async with token_endpoint() as idp:
        idp.reply = reply
        async with gateway(idp.url) as server:
            assert await server.upstream_tokens(SESSION, "corp") is None
            inject = UpstreamToken(server.upstream_tokens, "corp")
            with pytest.raises(LoginRequired, match="log in again") as refused:
                await inject.headers(caller())
            assert refused.value.error == "invalid_token"  # a 401 with a WWW-Authenticate challenge
            no_secret_in(str(refused.value))


async def test_without_a_refresh_token_the_user_logs_in_again_and_the_upstream_is_not_asked() -> None:
    async with token_endpoint() as idp, gateway(idp.url, refresh_token=None) as server:
        with pytest.raises(LoginRequired, match="log in again"):
            await UpstreamToken(server.upstream_tokens, "corp").headers(caller())
        assert idp.forms == []


@pytest.mark.parametrize(
    "reply",
    [
        (503, {"error": "temporarily_unavailable", "error_description": "maintenance"}),
        (500, {"error": "server_error"}),
        (502, {"error": "invalid_grant"}),  # a 5xx is the upstream failing, whatever code its body carries
        (503, {}),
    ],
)
async def test_an_upstream_failing_with_5xx_fails_the_call_not_the_login(reply: tuple[int, dict[str, Any]]) -> None:
    async with token_endpoint() as idp:
        idp.reply = reply
        async with gateway(idp.url) as server:
            with pytest.raises(UpstreamError) as raised:
                await server.upstream_tokens(SESSION, "corp")
            assert raised.value.error in UPSTREAM_TRANSIENT
            inject = UpstreamToken(server.upstream_tokens, "corp")
            with pytest.raises(OutgoingAuthError, match="upstream provider 'corp' unreachable") as failed:
                await inject.headers(caller())
            assert not isinstance(failed.value, LoginRequired)
            no_secret_in(str(failed.value))
            # the session is untouched: once the upstream is back, the same login works
            idp.reply = (200, {"access_token": "fresh-at", "expires_in": 3600})
            assert await inject.headers(caller()) == {"Authorization": "Bearer fresh-at"}


async def test_an_unreachable_upstream_fails_the_call_not_the_login() -> None:
    async with token_endpoint() as idp:
        closed = idp.url
    async with gateway(closed) as server:  # the port is closed now
        with pytest.raises(OutgoingAuthError, match="upstream provider 'corp' unreachable") as failed:
            await UpstreamToken(server.upstream_tokens, "corp").headers(caller())
        assert not isinstance(failed.value, LoginRequired)
        no_secret_in(str(failed.value))


async def test_an_upstream_that_times_out_fails_the_call_not_the_login() -> None:
    async with token_endpoint() as idp:
        idp.delay = 1.5  # the client gives up after 0.5 s
        idp.reply = (200, {"access_token": "too-late", "expires_in": 3600})
        async with gateway(idp.url, timeout=0.5) as server:
            with pytest.raises(OutgoingAuthError, match="upstream provider 'corp' unreachable"):
                await UpstreamToken(server.upstream_tokens, "corp").headers(caller())


async def test_the_token_exchange_subject_maps_refresh_failures_the_same_way() -> None:
    """`tokenExchange` with an upstream's token as the subject goes through the same lookup."""
    async with token_endpoint() as idp, gateway(idp.url) as server:
        subject = upstream_subject(server.upstream_tokens, "corp")
        idp.reply = (503, {"error": "temporarily_unavailable"})
        with pytest.raises(OutgoingAuthError, match="upstream provider 'corp' unreachable"):
            await subject(caller())
        idp.reply = (400, {"error": "invalid_grant"})
        with pytest.raises(LoginRequired, match="log in again"):
            await subject(caller())


async def test_a_lookup_raising_a_refusal_is_a_new_login_and_a_transient_error_is_not() -> None:
    """Whatever the lookup, the `UpstreamError` code decides (the `UpstreamLookup` contract)."""
    raised: list[UpstreamError] = []

    async def lookup(session: str, provider: str) -> UpstreamTokens | None:
        raise raised[-1]

    inject = UpstreamToken(lookup, "corp")
    for code in sorted(UPSTREAM_TRANSIENT):
        raised.append(UpstreamError(code, "cannot reach the token endpoint"))
        with pytest.raises(OutgoingAuthError, match="upstream provider 'corp' unreachable: cannot reach"):
            await inject.headers(caller())
    for code in ("invalid_grant", "invalid_client", "unauthorized_client"):
        raised.append(UpstreamError(code, "no"))
        with pytest.raises(LoginRequired, match="log in again"):
            await inject.headers(caller())
