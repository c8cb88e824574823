"""The `keys` readiness check: the JWKS fetched (through the cache, under its rate limit) and holding a usable key;
which authenticators have one at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from authn_idp import AUDIENCE, FakeClock, LocalIdP
from joserfc.jwk import OctKey, RSAKey

from hivegate.authn.authenticators import (
    AnonymousAuthenticator,
    BearerAuthenticator,
    LocalAuthenticator,
    build_authenticator,
)
from hivegate.authn.discovery import OIDCDiscovery
from hivegate.authn.jwks import JWKSCache, StaticKeys
from hivegate.authn.jwt import JWTVerifier
from hivegate.authn.oidc_config import OIDCConfig
from hivegate.httpclient.guard import GuardedHTTPClient
from support.backend import closed_port
from support.webserver import serve_on_loopback

pytestmark = pytest.mark.anyio


@dataclass
class Flaky:
    url: str = ""
    status: int = 503
    body: Any = None
    delay: float = 0.0
    hits: int = 0


@asynccontextmanager
async def flaky_jwks() -> AsyncIterator[Flaky]:
    state = Flaky()

    async def jwks(_request: web.Request) -> web.Response:
        state.hits += 1
        await asyncio.sleep(state.delay)
        return web.json_response(state.body if state.body is not None else {"error": "down"}, status=state.status)

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    async with serve_on_loopback(app) as base:
        state.url = f"{base}/jwks"
        yield state


async def test_a_probe_fetches_the_set_once_and_then_answers_from_the_cache(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey
) -> None:
    jwks = JWKSCache(http, idp.jwks_url)
    assert idp.count("jwks") == 0
    assert await jwks.ready() is None
    for _ in range(20):
        assert await jwks.ready() is None
    assert idp.count("jwks") == 1  # never refetched by a probe
    verifier = JWTVerifier(jwks, issuer=idp.issuer, audience=AUDIENCE)
    assert (await verifier.verify(idp.token(rsa_key))).subject == "alice"
    assert idp.count("jwks") == 1  # the token used the keys the probe fetched


async def test_an_unreachable_jwks_is_not_ready(http: GuardedHTTPClient) -> None:
    clock = FakeClock(1000.0)
    url = f"http://127.0.0.1:{closed_port()}/jwks"
    jwks = JWKSCache(http, url, refetch_interval=10, clock=clock)
    problem = await jwks.ready()
    assert problem is not None
    assert problem.startswith("JWKS unavailable: request to")
    assert "failed" in problem


async def test_a_failing_jwks_is_asked_once_per_interval_and_recovers(http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    clock = FakeClock(1000.0)
    async with flaky_jwks() as server:
        jwks = JWKSCache(http, server.url, refetch_interval=10, clock=clock)
        for _ in range(5):
            assert await jwks.ready() == f"JWKS unavailable: JWKS at {server.url} answered HTTP 503"
        assert server.hits == 1
        server.status, server.body = 200, {"keys": [rsa_key.as_dict(private=False)]}
        assert await jwks.ready() is not None  # not asked again yet
        assert server.hits == 1
        clock.advance(10)
        assert await jwks.ready() is None
        assert server.hits == 2
        assert await jwks.get("rsa-1") is not None


async def test_a_jwks_without_a_usable_key_is_not_ready(http: GuardedHTTPClient) -> None:
    async with flaky_jwks() as server:
        server.status = 200
        server.body = {"keys": [{**OctKey.generate_key(256).as_dict(), "kid": "hmac"}, {"kty": "RSA", "kid": "x"}]}
        jwks = JWKSCache(http, server.url)
        assert await jwks.ready() == "the JWKS holds no usable signing key"
        server.body = {"nokeys": True}
        jwks = JWKSCache(http, server.url)
        assert await jwks.ready() == "JWKS unavailable: JWKS document has no 'keys' list"


async def test_a_probe_that_gives_up_waiting_leaves_the_fetch_running(http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    async with flaky_jwks() as server:
        server.status, server.body, server.delay = 200, {"keys": [rsa_key.as_dict(private=False)]}, 0.3
        jwks = JWKSCache(http, server.url)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):  # what `Readiness` does to a slow check
                await jwks.ready()
        assert await jwks.ready() is None  # waits for the same fetch
        assert server.hits == 1


async def test_a_failing_discovery_is_the_reason(http: GuardedHTTPClient) -> None:
    issuer = f"http://127.0.0.1:{closed_port()}"
    discovery = OIDCDiscovery(http, issuer, attempts=1)
    problem = await JWKSCache(http, discovery.jwks_uri).ready()
    assert problem is not None
    assert problem.startswith("JWKS unavailable: request to")
    assert "/.well-known/openid-configuration" in problem


async def test_the_keys_check_is_there_only_when_jwts_are_verified_with_a_jwks(idp: LocalIdP) -> None:
    base = {"issuer": idp.issuer, "insecure_allow_http": True, "jwks_allow_private_ip": True}
    jwt_only = build_authenticator(OIDCConfig(audience=AUDIENCE, jwks_url=idp.jwks_url, **base))
    with_introspection = build_authenticator(
        OIDCConfig(audience=AUDIENCE, introspection_url=f"{idp.base}/introspect", **base)
    )
    try:
        check = jwt_only.keys_ready
        assert check is not None
        assert await check() is None
        assert idp.count("jwks") == 1
        # opaque tokens are introspected: they can be validated without the JWKS, which is not a readiness matter
        assert with_introspection.keys_ready is None
        assert LocalAuthenticator("alice").keys_ready is None
        assert AnonymousAuthenticator().keys_ready is None
    finally:
        await jwt_only.aclose()
        await with_introspection.aclose()


async def test_keys_held_in_process_are_ready_when_there_is_one(rsa_key: RSAKey) -> None:
    """The embedded authorization server verifies its own tokens with its signing keys' public halves."""
    keys = StaticKeys({"keys": [rsa_key.as_dict(private=False)]})
    held = BearerAuthenticator(
        jwt_verifier=JWTVerifier(keys, issuer="i", audience="a"), introspector=None, realm="i", keys_ready=keys.ready
    )
    check = held.keys_ready
    assert check is not None
    assert await check() is None
    assert await StaticKeys({"keys": []}).ready() == "no usable signing key"
