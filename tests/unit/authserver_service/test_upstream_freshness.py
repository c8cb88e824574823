"""Upstream tokens stay fresh: a refresh at our token endpoint, or a backend asking for the upstream token, refreshes
expired upstream tokens first, and the user's claims (groups, roles, name, email) follow the refreshed ID token; an
upstream that refuses ends the session's link to it (log in again), one that cannot be reached changes nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from authserver_fakes import Upstream, claims_of, login, redeem, refresh, server

from hivegate.authserver.errors import OAuthError
from hivegate.authserver.service import AuthorizationServer
from hivegate.authserver.upstream.base import UpstreamError, UpstreamIdentity, UpstreamTokens

pytestmark = pytest.mark.anyio

START = 1_000_000.0


@dataclass
class ExpiringUpstream(Upstream):
    """Tokens that live a minute; `groups` and `subject` are what its next ID token says; `refusal` what it answers
    a refresh with instead."""

    now: list[float] = field(default_factory=lambda: [START])
    groups: list[str] = field(default_factory=lambda: ["mcp-developers"])
    refusal: UpstreamError | None = None
    refreshed: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set, a refresh answers only once the gate opens

    def _answer(self, n: int) -> tuple[UpstreamTokens, UpstreamIdentity]:
        tokens = UpstreamTokens(f"{self.name}-access-{n}", refresh_token=f"{self.name}-rt-{n}", id_token=f"id-{n}",
                                expires_at=self.now[0] + 60)  # fmt: skip
        claims: dict[str, Any] = {"sub": self.subject, "email": self.email, "groups": list(self.groups)}
        return tokens, UpstreamIdentity(self.subject, "Alice", self.email, claims)

    async def exchange_code(
        self, code: str, *, code_verifier: str, nonce: str, redirect_uri: str
    ) -> tuple[UpstreamTokens, UpstreamIdentity]:
        return self._answer(0)

    async def refresh(self, refresh_token: str) -> tuple[UpstreamTokens, UpstreamIdentity | None]:
        self.refreshed.append(refresh_token)
        if self.gate is not None:
            await self.gate.wait()
        if self.refusal is not None:
            raise self.refusal
        return self._answer(len(self.refreshed))


async def signed_in(up: ExpiringUpstream) -> tuple[AuthorizationServer, dict[str, Any]]:
    s = server(up, clock=lambda: up.now[0])
    return s, await redeem(s, (await login(s))["code"])


def groups(s: AuthorizationServer, answer: dict[str, Any]) -> list[str]:
    return list(claims_of(s.keys.jwks(), answer["access_token"])["groups"])


def tsid(s: AuthorizationServer, answer: dict[str, Any]) -> str:
    return str(claims_of(s.keys.jwks(), answer["access_token"])["tsid"])


async def test_a_refresh_renews_expired_upstream_tokens_and_the_claims_follow_the_new_id_token() -> None:
    up = ExpiringUpstream("okta")
    s, first = await signed_in(up)
    assert groups(s, first) == ["mcp-developers"]
    second = await refresh(s, first["refresh_token"])  # upstream tokens still good: the upstream is not asked
    assert up.refreshed == []
    up.now[0] += 61
    up.groups = ["mcp-admins"]
    third = await refresh(s, second["refresh_token"])
    assert up.refreshed == ["okta-rt-0"]
    assert groups(s, third) == ["mcp-admins"]  # Cedar sees the current groups
    upstream = await s.upstream_tokens(tsid(s, third), "okta")
    assert upstream is not None
    assert upstream.access_token == "okta-access-1"
    await refresh(s, third["refresh_token"])
    assert up.refreshed == ["okta-rt-0"]  # fresh again: once is enough


async def test_a_backend_asking_for_the_upstream_token_updates_the_claims_too() -> None:
    up = ExpiringUpstream("okta")
    s, first = await signed_in(up)
    up.now[0] += 61
    up.groups = []
    upstream = await s.upstream_tokens(tsid(s, first), "okta")
    assert upstream is not None
    assert upstream.access_token == "okta-access-1"
    second = await refresh(s, first["refresh_token"])
    assert up.refreshed == ["okta-rt-0"]
    assert groups(s, second) == []  # removed from every group upstream


@pytest.mark.parametrize("error", ["invalid_grant", "invalid_scope", "unauthorized_client"])
async def test_an_upstream_refusing_the_refresh_ends_the_link_and_the_user_logs_in_again(error: str) -> None:
    up = ExpiringUpstream("okta", refusal=UpstreamError(error, "refresh token revoked"))
    s, first = await signed_in(up)
    up.now[0] += 61
    with pytest.raises(OAuthError) as refused:
        await refresh(s, first["refresh_token"])
    assert refused.value.error == "invalid_grant"
    assert "log in again" in refused.value.description
    assert "okta" in refused.value.description
    assert await s.upstream_tokens(tsid(s, first), "okta") is None  # dropped
    with pytest.raises(OAuthError) as again:
        await refresh(s, first["refresh_token"])
    assert again.value.error == "invalid_grant"
    assert up.refreshed == ["okta-rt-0"]  # the upstream is not asked again with a dead token


async def test_a_backend_meeting_a_refusal_ends_the_link_for_the_refresh_grant_too() -> None:
    up = ExpiringUpstream("okta", refusal=UpstreamError("invalid_grant", "revoked"))
    s, first = await signed_in(up)
    up.now[0] += 61
    assert await s.upstream_tokens(tsid(s, first), "okta") is None
    assert await s.upstream_tokens(tsid(s, first), "okta") is None
    with pytest.raises(OAuthError) as refused:
        await refresh(s, first["refresh_token"])
    assert (refused.value.error, "log in again" in refused.value.description) == ("invalid_grant", True)
    assert up.refreshed == ["okta-rt-0"]


async def test_an_unreachable_upstream_leaves_the_refresh_token_usable() -> None:
    up = ExpiringUpstream("okta", refusal=UpstreamError("temporarily_unavailable", "connection refused"))
    s, first = await signed_in(up)
    up.now[0] += 61
    with pytest.raises(OAuthError) as unavailable:
        await refresh(s, first["refresh_token"])
    assert (unavailable.value.error, unavailable.value.status) == ("temporarily_unavailable", 503)
    up.refusal = None  # the upstream is back
    second = await refresh(s, first["refresh_token"])
    assert "refresh_token" in second
    assert up.refreshed == ["okta-rt-0", "okta-rt-0"]


async def test_a_refreshed_id_token_naming_another_user_ends_the_link() -> None:
    up = ExpiringUpstream("okta")
    s, first = await signed_in(up)
    up.now[0] += 61
    up.subject = "someone-else"
    with pytest.raises(OAuthError) as refused:
        await refresh(s, first["refresh_token"])
    assert (refused.value.error, "log in again" in refused.value.description) == ("invalid_grant", True)


async def test_concurrent_callers_refresh_the_upstream_once() -> None:
    up = ExpiringUpstream("okta", gate=asyncio.Event())
    s, first = await signed_in(up)
    up.now[0] += 61
    session = tsid(s, first)
    with anyio.fail_after(5):
        callers = [asyncio.ensure_future(s.upstream_tokens(session, "okta")) for _ in range(5)]
        while not up.refreshed:
            await asyncio.sleep(0)
        for _ in range(20):  # let every other caller reach the refresh in progress
            await asyncio.sleep(0)
        assert up.gate is not None
        up.gate.set()
        found = await asyncio.gather(*callers)
    assert {t.access_token for t in found if t is not None} == {"okta-access-1"}
    assert up.refreshed == ["okta-rt-0"]
