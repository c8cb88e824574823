from __future__ import annotations

import getpass
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from authn_idp import AUDIENCE, CLIENT_ID, CLIENT_SECRET, LocalIdP
from joserfc.jwk import RSAKey

from hivegate.authn.authenticators import (
    AnonymousAuthenticator,
    BearerAuthenticator,
    LocalAuthenticator,
    build_authenticator,
)
from hivegate.authn.cache import DeadlineCache
from hivegate.authn.introspection import RFC7662Introspector
from hivegate.authn.jwks import JWKSCache
from hivegate.authn.jwt import JWTVerifier
from hivegate.authn.oidc_config import OIDCConfig
from hivegate.core.ports import Authenticator
from hivegate.core.principal import Principal
from hivegate.errors import AuthenticationError, ConfigError
from hivegate.httpclient.guard import GuardedHTTPClient

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def built(cfg: OIDCConfig) -> AsyncIterator[Authenticator]:
    authenticator = build_authenticator(cfg)
    try:
        yield authenticator
    finally:
        await authenticator.aclose()


def local_cfg(idp: LocalIdP, **overrides: Any) -> OIDCConfig:
    fields: dict[str, Any] = {
        "issuer": idp.issuer,
        "audience": AUDIENCE,
        "insecure_allow_http": True,
        "jwks_allow_private_ip": True,
        "scopes": ("openid", "mcp"),
    }
    fields.update(overrides)
    return OIDCConfig(**fields)


async def test_local_mode_is_the_os_user() -> None:
    async with built(OIDCConfig(mode="local")) as authenticator:
        principal = await authenticator.authenticate(None)
        assert authenticator.requires_token is False
    user = getpass.getuser()
    assert (principal.subject, principal.issuer, principal.kind) == (user, "hivegate-local", "local")
    assert principal.claims == {
        "sub": user,
        "iss": "hivegate-local",
        "aud": "hivegate",
        "email": f"{user}@localhost",
        "name": user,
    }
    assert (await LocalAuthenticator("dana").authenticate("Bearer whatever")).subject == "dana"


async def test_anonymous_mode() -> None:
    async with built(OIDCConfig(mode="anonymous")) as authenticator:
        principal = await authenticator.authenticate("Bearer ignored")
    assert (principal.subject, principal.issuer, principal.kind) == ("anonymous", "hivegate-anonymous", "anonymous")
    assert isinstance(authenticator, AnonymousAuthenticator)


async def test_oidc_mode_verifies_jwts_via_discovery(idp: LocalIdP, rsa_key: RSAKey) -> None:
    async with built(local_cfg(idp)) as authenticator:
        assert isinstance(authenticator, BearerAuthenticator)
        assert authenticator.requires_token is True
        assert authenticator.realm == idp.issuer
        assert authenticator.scopes == ("openid", "mcp")
        assert authenticator.authorization_servers == (idp.issuer,)
        assert idp.count("discovery") == 0  # nothing fetched at build time
        principal = await authenticator.authenticate("Bearer " + idp.token(rsa_key, exp=int(time.time()) + 60))
    assert (principal.subject, principal.kind) == ("alice", "jwt")
    assert (idp.count("discovery"), idp.count("jwks")) == (1, 1)


async def test_explicit_jwks_url_skips_discovery(idp: LocalIdP, rsa_key: RSAKey) -> None:
    async with built(local_cfg(idp, jwks_url=idp.jwks_url)) as authenticator:
        await authenticator.authenticate("Bearer " + idp.token(rsa_key))
    assert (idp.count("discovery"), idp.count("jwks")) == (0, 1)


async def test_opaque_tokens_go_to_introspection_with_the_env_secret(
    idp: LocalIdP, rsa_key: RSAKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEGATE_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    idp.introspection["opaque-abc"] = {"active": True, "sub": "erin", "aud": AUDIENCE, "exp": int(time.time()) + 60}
    cfg = local_cfg(idp, introspection_url=f"{idp.base}/introspect", client_id=CLIENT_ID)
    async with built(cfg) as authenticator:
        opaque = await authenticator.authenticate("Bearer opaque-abc")
        jwt = await authenticator.authenticate("Bearer " + idp.token(rsa_key))
    assert (opaque.subject, opaque.kind) == ("erin", "opaque")
    assert (jwt.subject, jwt.kind) == ("alice", "jwt")
    assert idp.count("introspect") == 1  # the JWT was not introspected


@pytest.mark.parametrize(
    ("header", "error", "description"),
    [
        (None, "invalid_request", "Missing Authorization header"),
        ("Basic YTpi", "invalid_request", "Authorization header must use the Bearer scheme"),
        ('Bearer tok"en', "invalid_request", "Bearer token is malformed"),
        ("Bearer opaque-abc", "invalid_token", "Token is not a valid JWT"),
    ],
)
async def test_oidc_mode_failures(idp: LocalIdP, header: str | None, error: str, description: str) -> None:
    async with built(local_cfg(idp)) as authenticator:
        with pytest.raises(AuthenticationError) as info:
            await authenticator.authenticate(header)
    assert (info.value.error, info.value.description) == (error, description)


async def test_private_issuer_is_unreachable_without_allow_private_ip(idp: LocalIdP, rsa_key: RSAKey) -> None:
    async with built(local_cfg(idp, jwks_allow_private_ip=False)) as authenticator:
        with pytest.raises(AuthenticationError) as info:
            await authenticator.authenticate("Bearer " + idp.token(rsa_key))
    assert info.value.error == "invalid_token"
    assert idp.count("discovery") == 0


def test_build_authenticator_validates_the_config() -> None:
    with pytest.raises(ConfigError, match="--oidc-issuer must be an https URL"):
        build_authenticator(OIDCConfig(issuer="http://idp.example", audience="a"))


class CountingCache(DeadlineCache[str, Principal]):
    """A principal cache that counts lookups."""

    def __init__(self) -> None:
        super().__init__(100)
        self.lookups = 0

    def get(self, key: str) -> Principal | None:
        self.lookups += 1
        return super().get(key)


async def test_a_cache_miss_looks_the_token_up_once(idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    jwt_verifier = JWTVerifier(JWKSCache(http, idp.jwks_url), issuer=idp.issuer, audience=AUDIENCE)
    introspector = RFC7662Introspector(
        http, f"{idp.base}/introspect", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, issuer=None, audience=AUDIENCE
    )
    jwt_verifier._cache = jwt_cache = CountingCache()
    introspector._cache = opaque_cache = CountingCache()
    idp.introspection["opaque-abc"] = {"active": True, "sub": "erin", "aud": AUDIENCE}
    authenticator = BearerAuthenticator(jwt_verifier=jwt_verifier, introspector=introspector, realm=None)
    jwt = "Bearer " + idp.token(rsa_key)
    assert (await authenticator.authenticate(jwt)).kind == "jwt"
    assert (jwt_cache.lookups, opaque_cache.lookups) == (1, 1)  # a miss in each verifier's cache, nothing more
    assert (await authenticator.authenticate(jwt)).kind == "jwt"
    assert (jwt_cache.lookups, opaque_cache.lookups) == (2, 1)  # a hit
    assert (await authenticator.authenticate("Bearer opaque-abc")).kind == "opaque"
    assert (jwt_cache.lookups, opaque_cache.lookups) == (3, 2)
