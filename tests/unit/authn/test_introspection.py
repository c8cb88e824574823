from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any
from urllib.parse import quote_plus

import anyio
import pytest
from authn_idp import (
    AUDIENCE,
    CLIENT_ID,
    CLIENT_SECRET,
    GITHUB_CLIENT_ID,
    GITHUB_CLIENT_SECRET,
    Ago,
    FakeClock,
    LocalIdP,
    at,
    basic,
    wait_until,
)
from joserfc.jwk import RSAKey

from hivegate.authn.introspection import (
    GitHubIntrospector,
    GoogleTokenInfoIntrospector,
    Introspector,
    RFC7662Introspector,
    basic_auth,
    build_introspector,
)
from hivegate.authn.jwks import JWKSCache
from hivegate.authn.oidc_config import GOOGLE_TOKENINFO_URL, OIDCConfig
from hivegate.errors import AuthenticationError
from hivegate.httpclient.guard import GuardedHTTPClient

pytestmark = pytest.mark.anyio

UNAVAILABLE = "Unable to validate token: the introspection endpoint is unavailable"


def rfc7662(
    idp: LocalIdP,
    http: GuardedHTTPClient,
    *,
    secret: str = CLIENT_SECRET,
    audience: str | None = AUDIENCE,
    **options: Any,
) -> RFC7662Introspector:
    return RFC7662Introspector(
        http,
        f"{idp.base}/introspect",
        client_id=CLIENT_ID,
        client_secret=secret,
        issuer=idp.issuer,
        audience=audience,
        **options,
    )


def active(idp: LocalIdP, *, now: float | None = None, **claims: Any) -> dict[str, Any]:
    exp = int(time.time() if now is None else now) + 300
    answer = {"active": True, "sub": "carol", "iss": idp.issuer, "aud": AUDIENCE, "exp": exp}
    answer.update(claims)
    return {k: v for k, v in answer.items() if v is not None}


async def refused(introspector: Introspector, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        await introspector.verify(token)
    assert info.value.error == "invalid_token"
    return info.value.description


def test_basic_auth_form_encodes_credentials() -> None:
    assert basic_auth("client", "secret") == basic("client", "secret")
    assert basic_auth("a b", "c:d/é") == basic("a+b", "c%3Ad%2F%C3%A9")


async def test_active_token_yields_an_opaque_principal_and_sends_client_credentials(
    idp: LocalIdP, http: GuardedHTTPClient
) -> None:
    idp.introspection["opaque-1"] = active(idp, scope="mcp:tools", client_id="cli")
    principal = await rfc7662(idp, http).verify("opaque-1")
    assert (principal.subject, principal.issuer, principal.kind) == ("carol", idp.issuer, "opaque")
    assert principal.claims["scope"] == "mcp:tools"
    assert principal.expires_at == idp.introspection["opaque-1"]["exp"]
    assert idp.introspection_auth == [basic(quote_plus(CLIENT_ID), quote_plus(CLIENT_SECRET))]
    assert idp.introspection_forms == [{"token": "opaque-1", "token_type_hint": "access_token"}]


async def test_refusals_are_remembered_for_30_seconds_by_token_digest(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    clock = FakeClock()
    introspector = rfc7662(idp, http, clock=clock)
    assert await refused(introspector, "revoked") == "Token is not active"
    clock.advance(29)
    assert await refused(introspector, "revoked") == "Token is not active"
    assert idp.count("introspect") == 1
    assert list(introspector._refused._entries) == [hashlib.sha256(b"revoked").digest()]  # never the token itself
    idp.introspection["revoked"] = active(idp)  # the issuer changed its mind
    clock.advance(2)
    assert (await introspector.verify("revoked")).subject == "carol"
    assert idp.count("introspect") == 2


async def test_an_unreachable_endpoint_is_not_remembered(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    introspector = rfc7662(idp, http, secret="wrong")  # the endpoint answers HTTP 401: our problem, not the token's
    idp.introspection["tok"] = active(idp)
    for _ in range(2):
        assert await refused(introspector, "tok") == UNAVAILABLE
    assert idp.count("introspect") == 2


async def test_a_token_not_valid_yet_is_not_remembered(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    clock = FakeClock()
    introspector = rfc7662(idp, http, clock=clock, clock_skew=0)
    idp.introspection["early"] = active(idp, nbf=int(clock.now) + 5, exp=int(clock.now) + 300)
    assert await refused(introspector, "early") == "Token is not valid yet ('nbf')"
    clock.advance(6)
    assert (await introspector.verify("early")).subject == "carol"


async def test_concurrent_checks_of_one_token_share_one_request(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    introspector = rfc7662(idp, http)
    idp.introspection["tok"] = active(idp)
    principals = await asyncio.gather(*(introspector.verify("tok") for _ in range(20)))
    assert {p.subject for p in principals} == {"carol"}
    outcomes = await asyncio.gather(*(introspector.verify("junk") for _ in range(20)), return_exceptions=True)
    assert {type(o) for o in outcomes} == {AuthenticationError}
    assert idp.count("introspect") == 2


async def test_a_cancelled_caller_does_not_cancel_the_shared_check(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    introspector = rfc7662(idp, http)
    idp.introspection["tok"] = active(idp)
    idp.introspection_gate = asyncio.Event()
    impatient = asyncio.ensure_future(introspector.verify("tok"))
    patient = asyncio.ensure_future(introspector.verify("tok"))
    await wait_until(lambda: idp.introspection_in_flight == 1)
    impatient.cancel()
    idp.introspection_gate.set()
    assert (await patient).subject == "carol"
    assert impatient.cancelled()
    assert idp.count("introspect") == 1


async def test_a_flood_of_junk_tokens_leaves_connections_for_jwks(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey
) -> None:
    introspector = rfc7662(idp, http)
    idp.introspection_gate = asyncio.Event()  # the introspection endpoint hangs
    flood = [asyncio.ensure_future(introspector.verify(f"junk-{i}")) for i in range(40)]
    try:
        await wait_until(lambda: idp.introspection_in_flight >= 16)
        with anyio.fail_after(3):  # the signing keys are still reachable
            assert await JWKSCache(http, idp.jwks_url).get(rsa_key.kid) is not None
        assert idp.introspection_peak == 16
    finally:
        idp.introspection_gate.set()
    outcomes = await asyncio.gather(*flood, return_exceptions=True)
    assert {getattr(o, "description", o) for o in outcomes} == {"Token is not active"}
    assert idp.introspection_peak == 16


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        ({"exp": Ago(120)}, "Token has expired"),
        ({"iss": "https://evil.example"}, "Token issuer is not trusted"),
        ({"aud": "https://other.example"}, "Token audience does not include this server"),
        ({"sub": None}, "Invalid authentication claims"),
        ({"active": "true"}, "Token is not active"),
    ],
)
async def test_bad_introspection_answers_are_refused_and_remembered(
    idp: LocalIdP, http: GuardedHTTPClient, claims: dict[str, Any], description: str
) -> None:
    clock = FakeClock()  # times are relative to the test's own clock, never to when the module was collected
    idp.introspection["tok"] = active(idp, now=clock.now, **at(clock.now, claims))
    introspector = rfc7662(idp, http, clock=clock)
    assert await refused(introspector, "tok") == description
    assert await refused(introspector, "tok") == description
    assert idp.count("introspect") == 1


async def test_iss_is_optional_in_the_answer(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    idp.introspection["tok"] = active(idp, iss=None)
    principal = await rfc7662(idp, http).verify("tok")
    assert principal.issuer == idp.issuer


@pytest.mark.parametrize(
    ("aud", "accepted"),
    [(AUDIENCE, True), (["other", AUDIENCE], True), (None, False), ("https://other.example/mcp", False)],
)
async def test_aud_must_name_the_configured_audience(
    idp: LocalIdP, http: GuardedHTTPClient, aud: str | list[str] | None, accepted: bool
) -> None:
    idp.introspection["tok"] = active(idp, aud=aud)
    if accepted:
        assert (await rfc7662(idp, http).verify("tok")).subject == "carol"
    else:
        assert await refused(rfc7662(idp, http), "tok") == "Token audience does not include this server"


async def test_without_a_configured_audience_aud_is_not_checked(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    idp.introspection["tok"] = active(idp, aud=None)
    assert (await rfc7662(idp, http, audience=None).verify("tok")).subject == "carol"


async def test_positive_answers_are_cached_until_exp(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    clock = FakeClock()
    introspector = rfc7662(idp, http, clock=clock, clock_skew=0)
    idp.introspection["tok"] = active(idp, exp=int(clock.now) + 40)
    first = await introspector.verify("tok")
    clock.advance(39)
    assert await introspector.verify("tok") is first
    assert idp.count("introspect") == 1
    clock.advance(2)
    assert await refused(introspector, "tok") == "Token has expired"
    assert idp.count("introspect") == 2


@pytest.mark.parametrize("exp_in", [3600, None])
async def test_revocation_takes_effect_within_a_minute(
    idp: LocalIdP, http: GuardedHTTPClient, exp_in: int | None
) -> None:
    clock = FakeClock()
    introspector = rfc7662(idp, http, clock=clock)
    idp.introspection["tok"] = active(idp, exp=None if exp_in is None else int(clock.now) + exp_in)
    await introspector.verify("tok")
    clock.advance(59)
    await introspector.verify("tok")
    assert idp.count("introspect") == 1
    del idp.introspection["tok"]  # revoked at the issuer
    clock.advance(2)
    assert await refused(introspector, "tok") == "Token is not active"
    assert idp.count("introspect") == 2


async def test_the_cache_lifetime_of_introspected_tokens_is_a_parameter(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    clock = FakeClock()
    introspector = rfc7662(idp, http, clock=clock, cache_ttl=10)
    idp.introspection["tok"] = active(idp)
    await introspector.verify("tok")
    clock.advance(9)
    await introspector.verify("tok")
    assert idp.count("introspect") == 1
    clock.advance(2)
    await introspector.verify("tok")
    assert idp.count("introspect") == 2


async def test_endpoint_refusing_our_credentials_is_an_invalid_token(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    idp.introspection["tok"] = active(idp)
    assert await refused(rfc7662(idp, http, secret="wrong"), "tok") == UNAVAILABLE


async def test_oversized_introspection_answer_is_refused(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    idp.introspection["tok"] = active(idp, padding="x" * 70_000)
    assert await refused(rfc7662(idp, http), "tok") == UNAVAILABLE


async def test_google_tokeninfo(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    exp = int(time.time()) + 300
    idp.tokeninfo["ya29.good"] = {"aud": "client-123", "sub": "1089", "scope": "openid email", "exp": str(exp)}
    idp.tokeninfo["ya29.other-app"] = {"aud": "client-999", "sub": "1089", "exp": str(exp)}
    google = GoogleTokenInfoIntrospector(http, audience="client-123", url=f"{idp.base}/tokeninfo")
    principal = await google.verify("ya29.good")
    assert (principal.subject, principal.issuer) == ("1089", "https://accounts.google.com")
    assert principal.claims["exp"] == exp
    assert principal.expires_at == exp
    assert await refused(google, "ya29.other-app") == "Token audience does not include this server"
    assert await refused(google, "ya29.unknown") == "Token is not active"


async def test_github_token_check(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    idp.github["gho_good"] = {
        "id": 1,
        "token": "gho_good",
        "user": {"login": "octocat", "id": 583231, "name": "The Octocat", "email": None},
        "scopes": ["repo", "read:org"],
        "expires_at": None,
    }
    github = GitHubIntrospector(http, client_id=GITHUB_CLIENT_ID, client_secret=GITHUB_CLIENT_SECRET, api_base=idp.base)
    principal = await github.verify("gho_good")
    assert (principal.subject, principal.issuer, principal.kind) == ("583231", "https://github.com", "opaque")
    assert principal.claims["login"] == "octocat"
    assert principal.claims["scopes"] == ["repo", "read:org"]
    assert principal.claims["aud"] == "https://github.com"
    assert "token" not in principal.claims
    assert idp.github_calls == [
        (
            f"/applications/{GITHUB_CLIENT_ID}/token",
            basic(GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET),
            {"access_token": "gho_good"},
        )
    ]
    assert await refused(github, "gho_other_app") == "Token is not active"


def test_build_introspector_picks_the_dialect_from_the_url() -> None:
    http = GuardedHTTPClient()
    base = {"issuer": "https://idp.example", "audience": "aud", "client_id": "c", "client_secret": "s"}
    picks = {
        GOOGLE_TOKENINFO_URL: GoogleTokenInfoIntrospector,
        "https://api.github.com/applications/c/token": GitHubIntrospector,
        "https://idp.example/oauth2/introspect": RFC7662Introspector,
    }
    for url, kind in picks.items():
        assert type(build_introspector(OIDCConfig(introspection_url=url, **base), http)) is kind


async def test_an_issuer_without_an_introspection_endpoint_refuses_opaque_tokens_saying_why(
    http: GuardedHTTPClient,
) -> None:
    async def nowhere() -> str | None:
        return None

    cfg = OIDCConfig(issuer="https://idp.example", audience="aud", client_id="c", client_secret="s")
    introspector = build_introspector(cfg, http, nowhere)
    description = await refused(introspector, "opaque-token")
    assert description == "Token is not a valid JWT, and the issuer publishes no introspection_endpoint"
