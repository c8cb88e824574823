"""Backend credentials: the token exchange against a real local STS (cache, one request per concurrent miss,
errors), upstream tokens from the authorization server's sessions, and what is never in an error message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from hivegate.authserver.upstream.base import UpstreamTokens
from hivegate.core.principal import Principal
from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.outgoing import Caller, ExchangedToken, LoginRequired, OutgoingAuthError, StaticHeader, UpstreamToken
from hivegate.outgoing.credentials import caller_token, upstream_subject
from support.backend import closed_port
from support.webserver import serve_on_loopback

pytestmark = pytest.mark.anyio

SUBJECT = "caller-token-aaaa"


@dataclass
class STS:
    url: str = ""
    forms: list[dict[str, str]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    reply: tuple[int, dict[str, Any]] | None = None
    delay: float = 0.0
    expires_in: int = 300


@asynccontextmanager
async def sts() -> AsyncIterator[STS]:
    state = STS()

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        state.forms.append({k: str(v) for k, v in form.items()})
        state.auth.append(request.headers.get("Authorization"))
        await asyncio.sleep(state.delay)
        if state.reply is not None:
            status, body = state.reply
            return web.json_response(body, status=status)
        body = {"access_token": f"exchanged-{len(state.forms)}", "token_type": "Bearer",
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "expires_in": state.expires_in}  # fmt: skip
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/token", token)
    async with serve_on_loopback(app) as base:
        state.url = f"{base}/token"
        yield state


def http() -> GuardedHTTPClient:
    return GuardedHTTPClient(allow_http=True, allow_private=True)


def caller(token: str = SUBJECT, **claims: Any) -> Caller:
    return Caller(Principal("alice", "https://idp", "jwt", {"sub": "alice", **claims}), token)


async def test_a_token_is_exchanged_once_and_then_served_from_the_cache() -> None:
    async with sts() as server:
        client = http()
        creds = ExchangedToken(
            token_url=server.url,
            http=client,
            subject=caller_token(),
            client_id="gw",
            client_secret="gw-secret",
            audience="https://backend",
            scopes=("read", "write"),
        )
        first = await creds.headers(caller())
        again = await creds.headers(caller())
        await client.aclose()
    assert first == again == {"Authorization": "Bearer exchanged-1"}
    assert len(server.forms) == 1
    form = server.forms[0]
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert form["subject_token"] == SUBJECT
    assert form["subject_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert form["audience"] == "https://backend"
    assert form["scope"] == "read write"
    assert server.auth[0] is not None
    assert server.auth[0].startswith("Basic ")


async def test_concurrent_misses_for_one_subject_make_one_request() -> None:
    async with sts() as server:
        server.delay = 0.2
        client = http()
        creds = ExchangedToken(token_url=server.url, http=client, subject=caller_token())
        results = await asyncio.gather(*(creds.headers(caller()) for _ in range(10)))
        other = await creds.headers(caller("another-subject-token"))
        await client.aclose()
    assert {r["Authorization"] for r in results} == {"Bearer exchanged-1"}
    assert other == {"Authorization": "Bearer exchanged-2"}  # another subject, another exchange
    assert len(server.forms) == 2


async def test_a_token_close_to_expiry_is_exchanged_again() -> None:
    async with sts() as server:
        server.expires_in = 20  # within the 30 s renewal margin
        client = http()
        creds = ExchangedToken(token_url=server.url, http=client, subject=caller_token())
        await creds.headers(caller())
        await creds.headers(caller())
        await client.aclose()
    assert len(server.forms) == 2


async def test_a_full_cache_evicts_the_least_recently_used_subject(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hivegate.outgoing.credentials.CACHE_ENTRIES", 2)
    async with sts() as server:
        client = http()
        creds = ExchangedToken(token_url=server.url, http=client, subject=caller_token())
        await creds.headers(caller("subject-a"))
        await creds.headers(caller("subject-b"))
        await creds.headers(caller("subject-a"))  # a hit: a is now the most recently used
        await creds.headers(caller("subject-c"))  # the cache is full: b goes, a stays
        again_a = await creds.headers(caller("subject-a"))
        again_b = await creds.headers(caller("subject-b"))
        await client.aclose()
    assert again_a == {"Authorization": "Bearer exchanged-1"}
    assert again_b == {"Authorization": "Bearer exchanged-4"}
    assert [f["subject_token"] for f in server.forms] == ["subject-a", "subject-b", "subject-c", "subject-b"]


async def test_a_custom_header_carries_the_token_as_is() -> None:
    async with sts() as server:
        client = http()
        creds = ExchangedToken(token_url=server.url, http=client, subject=caller_token(), header_name="X-Upstream")
        assert await creds.headers(caller()) == {"X-Upstream": "exchanged-1"}
        await client.aclose()


async def test_an_sts_error_names_its_code_and_never_the_tokens() -> None:
    async with sts() as server:
        server.reply = (400, {"error": "invalid_target", "error_description": "audience not allowed"})
        client = http()
        creds = ExchangedToken(token_url=server.url, http=client, subject=caller_token(), client_secret="gw-secret",
                               client_id="gw")  # fmt: skip
        with pytest.raises(OutgoingAuthError) as failed:
            await creds.headers(caller())
        await client.aclose()
    message = str(failed.value)
    assert message == "token exchange refused by the STS: invalid_target: audience not allowed"
    assert SUBJECT not in message
    assert "gw-secret" not in message


async def test_an_unreachable_sts_is_a_clear_error() -> None:
    client = http()
    creds = ExchangedToken(token_url=f"http://127.0.0.1:{closed_port()}/token", http=client, subject=caller_token())
    with pytest.raises(OutgoingAuthError, match="the STS is unreachable"):
        await creds.headers(caller())
    await client.aclose()


async def test_without_a_caller_token_there_is_nothing_to_exchange() -> None:
    creds = ExchangedToken(token_url="http://127.0.0.1:1/token", http=http(), subject=caller_token())
    with pytest.raises(OutgoingAuthError, match="needs the caller's token"):
        await creds.headers(None)


async def test_upstream_tokens_are_looked_up_by_the_callers_login_session() -> None:
    asked: list[tuple[str, str]] = []

    async def lookup(session: str, provider: str) -> UpstreamTokens | None:
        asked.append((session, provider))
        return UpstreamTokens("upstream-at", id_token="upstream-id") if session == "sess-1" else None

    inject = UpstreamToken(lookup, "corp")
    assert await inject.headers(caller(tsid="sess-1")) == {"Authorization": "Bearer upstream-at"}
    assert asked == [("sess-1", "corp")]
    with pytest.raises(LoginRequired, match="has expired: log in again"):
        await inject.headers(caller(tsid="gone"))
    with pytest.raises(LoginRequired, match="no login session"):
        await inject.headers(caller())  # a token not issued by this gateway's authorization server
    subject = upstream_subject(lookup, "corp", id_token=True)
    assert await subject(caller(tsid="sess-1")) == "upstream-id"


async def test_static_headers_do_not_depend_on_the_caller() -> None:
    header = StaticHeader("X-Api-Key", "k-123")
    assert not header.needs_caller
    assert await header.headers(None) == {"X-Api-Key": "k-123"}
    assert "k-123" not in repr(header)
