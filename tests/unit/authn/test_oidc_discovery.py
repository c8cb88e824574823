from __future__ import annotations

import pytest
from authn_idp import AUDIENCE, FakeClock, LocalIdP
from joserfc.jwk import RSAKey

import hivegate.authn.discovery as discovery_module
import hivegate.httpclient.guard as ssrf_module
from hivegate.authn.discovery import OIDCDiscovery, discovery_url
from hivegate.authn.jwks import JWKSCache
from hivegate.authn.jwt import JWTVerifier
from hivegate.errors import AuthenticationError, FetchError, HivegateError, IssuerMismatchError, invalid_token
from hivegate.httpclient.guard import GuardedHTTPClient

pytestmark = pytest.mark.anyio


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def test_discovery_url_drops_a_trailing_slash() -> None:
    assert discovery_url("https://idp.example/") == "https://idp.example/.well-known/openid-configuration"
    assert (
        discovery_url("https://idp.example/realms/x") == "https://idp.example/realms/x/.well-known/openid-configuration"
    )


async def test_discovery_is_lazy_and_fetched_once(idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    discovery = OIDCDiscovery(http, idp.issuer)
    verifier = JWTVerifier(JWKSCache(http, discovery.jwks_uri), issuer=idp.issuer, audience=AUDIENCE)
    assert idp.count("discovery") == 0
    assert (await verifier.verify(idp.token(rsa_key))).subject == "alice"
    assert (await verifier.verify(idp.token(rsa_key, sub="bob"))).subject == "bob"
    assert idp.count("discovery") == 1
    assert idp.count("jwks") == 1


async def test_discovery_retries_with_backoff(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    idp.discovery_failures = 2
    sleep = RecordingSleep()
    discovery = OIDCDiscovery(http, idp.issuer, sleep=sleep)
    assert await discovery.jwks_uri() == idp.jwks_url
    assert idp.count("discovery") == 3
    assert sleep.delays == [0.5, 1.0]


async def test_discovery_gives_up_after_three_attempts_and_backs_off(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    idp.discovery_failures = 100
    clock = FakeClock(1000.0)
    discovery = OIDCDiscovery(http, idp.issuer, sleep=RecordingSleep(), clock=clock)
    with pytest.raises(FetchError, match="HTTP 500"):
        await discovery.metadata()
    assert idp.count("discovery") == 3
    with pytest.raises(FetchError, match="HTTP 500"):
        await discovery.metadata()  # within 10 s: the same error, no new requests
    assert idp.count("discovery") == 3
    idp.discovery_failures = 0
    clock.advance(10)
    assert (await discovery.metadata())["issuer"] == idp.issuer
    assert idp.count("discovery") == 4


async def test_issuer_in_document_must_match_exactly(idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    idp.discovery_issuer = idp.issuer + "/"
    discovery = OIDCDiscovery(http, idp.issuer, sleep=RecordingSleep())
    with pytest.raises(IssuerMismatchError, match="not the configured"):
        await discovery.metadata()
    assert idp.count("discovery") == 1  # a configuration error: not retried

    verifier = JWTVerifier(
        JWKSCache(http, OIDCDiscovery(http, idp.issuer).jwks_uri), issuer=idp.issuer, audience=AUDIENCE
    )
    with pytest.raises(AuthenticationError) as info:
        await verifier.verify(idp.token(rsa_key))
    assert info.value.error == "invalid_token"
    assert info.value.description == "Unable to verify token: the issuer's signing keys are unavailable"
    assert idp.count("jwks") == 0


def test_fetch_errors_belong_to_the_error_tree() -> None:
    assert issubclass(IssuerMismatchError, FetchError)
    assert issubclass(FetchError, HivegateError)
    assert ssrf_module.FetchError is FetchError  # the old import paths keep working
    assert discovery_module.IssuerMismatchError is IssuerMismatchError
    error = invalid_token("Token has expired")
    assert (type(error), error.error, error.description) == (AuthenticationError, "invalid_token", "Token has expired")
