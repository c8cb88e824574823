from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from authn_idp import AUDIENCE, Ago, Ahead, FakeClock, LocalIdP, at, b64url, unsigned_token
from joserfc.jwk import ECKey, OKPKey, RSAKey

import hivegate.authn.jwt as jwt_module
from hivegate.authn.jwks import JWKSCache
from hivegate.authn.jwt import JWTVerifier, looks_like_jwt
from hivegate.errors import AuthenticationError
from hivegate.httpclient.guard import GuardedHTTPClient

pytestmark = pytest.mark.anyio


def make_verifier(idp: LocalIdP, http: GuardedHTTPClient, **options: Any) -> JWTVerifier:
    return JWTVerifier(JWKSCache(http, idp.jwks_url), issuer=idp.issuer, audience=AUDIENCE, **options)


async def refused(verifier: JWTVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        await verifier.verify(token)
    assert info.value.error == "invalid_token"
    return info.value.description


@pytest.mark.parametrize(("alg", "key_name"), [("RS256", "rsa"), ("PS256", "rsa"), ("ES256", "ec"), ("EdDSA", "ed")])
async def test_valid_tokens_yield_a_principal(
    idp: LocalIdP,
    http: GuardedHTTPClient,
    rsa_key: RSAKey,
    ec_key: ECKey,
    ed_key: OKPKey,
    alg: str,
    key_name: str,
) -> None:
    key = {"rsa": rsa_key, "ec": ec_key, "ed": ed_key}[key_name]
    exp = int(time.time()) + 300
    token = idp.token(key, alg=alg, exp=exp, email="alice@example.com")
    principal = await make_verifier(idp, http).verify(token)
    assert principal.subject == "alice"
    assert principal.issuer == idp.issuer
    assert principal.kind == "jwt"
    assert principal.expires_at == exp
    assert principal.claims["email"] == "alice@example.com"
    assert principal.claims["aud"] == AUDIENCE


async def test_audience_may_be_a_list_and_act_claim_is_kept(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey
) -> None:
    act = {"sub": "agent-7", "act": {"sub": "service-x"}}
    token = idp.token(rsa_key, aud=["other", AUDIENCE], act=act)
    principal = await make_verifier(idp, http).verify(token)
    assert principal.claims["act"] == act


async def test_alg_none_is_refused(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300}
    description = await refused(make_verifier(idp, http), unsigned_token({"alg": "none", "kid": "rsa-1"}, claims))
    assert description == "Token algorithm 'none' is not allowed: only asymmetric signatures are accepted"


async def test_hs256_is_refused_even_keyed_with_the_public_key(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey
) -> None:
    # The classic key-confusion attack: HMAC with the issuer's public key as the shared secret.
    # (joserfc itself refuses to build such a key, so the token is signed by hand.)
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 300}
    signing_input = unsigned_token({"alg": "HS256", "kid": "rsa-1"}, claims)[:-1]
    mac = hmac.new(rsa_key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(mac)}"
    description = await refused(make_verifier(idp, http), token)
    assert description == "Token algorithm 'HS256' is not allowed: only asymmetric signatures are accepted"
    assert idp.count("jwks") == 0


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        ({"iss": "https://evil.example"}, "Token issuer is not trusted"),
        ({"iss": None}, "Token issuer is not trusted"),
        ({"aud": "https://other.example/mcp"}, "Token audience does not include this server"),
        ({"aud": ["a", "b"]}, "Token audience does not include this server"),
        ({"exp": Ago(120)}, "Token has expired"),
        ({"exp": None}, "Token has no expiry ('exp')"),
        ({"exp": "tomorrow"}, "Invalid 'exp' claim"),
        ({"nbf": Ahead(600)}, "Token is not valid yet ('nbf')"),
        ({"iat": Ahead(600)}, "Token was issued in the future ('iat')"),
        ({"sub": None}, "Invalid authentication claims"),
        ({"sub": ""}, "Invalid authentication claims"),
    ],
)
async def test_bad_claims_are_refused(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey, claims: dict[str, Any], description: str
) -> None:
    clock = FakeClock()  # times are relative to the test's own clock, never to when the module was collected
    token = idp.token(rsa_key, now=int(clock.now), **at(clock.now, claims))
    assert await refused(make_verifier(idp, http, clock=clock), token) == description


async def test_clock_skew_tolerates_a_recent_expiry(idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    clock = FakeClock()
    now = int(clock.now)
    token = idp.token(rsa_key, now=now, exp=now - 30, nbf=now + 30)
    assert (await make_verifier(idp, http, clock=clock, clock_skew=60).verify(token)).subject == "alice"
    assert await refused(make_verifier(idp, http, clock=clock, clock_skew=0), token) == "Token has expired"


async def test_missing_kid_is_refused(idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    assert await refused(make_verifier(idp, http), idp.token(rsa_key, kid=None)) == "Token header has no 'kid'"


async def test_bad_signatures_are_refused(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey, rsa_key_2: RSAKey, ec_key: ECKey
) -> None:
    verifier = make_verifier(idp, http)
    header, _, signature = idp.token(rsa_key).split(".")
    forged = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "root", "exp": int(time.time()) + 300}
    forged_payload = b64url(json.dumps(forged).encode())
    assert await refused(verifier, f"{header}.{forged_payload}.{signature}") == "Invalid token signature"
    # signed by another key but naming rsa-1
    assert await refused(verifier, idp.token(rsa_key_2, kid="rsa-1")) == "Invalid token signature"
    # an ES256 token naming an RSA key
    assert await refused(verifier, idp.token(ec_key, alg="ES256", kid="rsa-1")) == "Invalid token signature"


async def test_key_alg_parameter_must_match_the_token(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "pinned", "alg": "RS256"})
    idp.published.append(key)
    verifier = make_verifier(idp, http)
    assert (await verifier.verify(idp.token(key, alg="RS256"))).subject == "alice"
    unpinned = RSAKey.import_key({k: v for k, v in key.as_dict(private=True).items() if k != "alg"})
    token = idp.token(unpinned, alg="PS256", kid="pinned")  # same key, another algorithm
    assert await refused(verifier, token) == "Token algorithm does not match its signing key"


async def test_malformed_tokens_are_refused(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    verifier = make_verifier(idp, http)
    assert await refused(verifier, "a.b.c") == "Malformed token"
    assert await refused(verifier, "not-a-jwt") == "Malformed token"


async def test_verified_tokens_are_served_from_cache_without_reverifying(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real = jwt_module.jws.validate_compact

    def counting(*args: Any, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(jwt_module.jws, "validate_compact", counting)
    clock = FakeClock()
    verifier = make_verifier(idp, http, clock=clock, clock_skew=0)
    token = idp.token(rsa_key, exp=int(clock.now) + 100)
    first = await verifier.verify(token)
    for _ in range(100):
        assert await verifier.verify(token) is first
    assert calls == 1

    clock.advance(101)  # past exp: no longer trusted from the cache
    assert await refused(verifier, token) == "Token has expired"
    assert calls == 2


async def test_cache_hits_are_fast(idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    verifier = make_verifier(idp, http)
    token = idp.token(rsa_key)
    await verifier.verify(token)
    started = time.perf_counter()
    for _ in range(10_000):
        await verifier.verify(token)
    per_hit = (time.perf_counter() - started) / 10_000
    assert per_hit < 20e-6  # a signature check costs ~60 µs; a hit is a dict lookup


async def test_cache_is_bounded(idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    verifier = make_verifier(idp, http, cache_size=8)
    for i in range(30):
        await verifier.verify(idp.token(rsa_key, jti=str(i)))
    assert len(verifier._cache) <= 8


def test_looks_like_jwt() -> None:
    assert looks_like_jwt(unsigned_token({"alg": "RS256"}, {"sub": "x"}) + "sig")
    assert not looks_like_jwt("opaque-token-123")
    assert not looks_like_jwt("a.b.c")
    assert not looks_like_jwt(f"{b64url(b'[1]')}.e30.sig")  # header is not an object
    assert not looks_like_jwt(f"{b64url(b'{}')}.e30.sig")  # no alg
    assert not looks_like_jwt("a.b.c.d.e")  # JWE
