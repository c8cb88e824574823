from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest
from authn_idp import AUDIENCE, FakeClock, LocalIdP, wait_until
from joserfc.jwk import OctKey, RSAKey

from hivegate.authn.jwks import JWKSCache, parse_jwks
from hivegate.authn.jwt import JWTVerifier
from hivegate.errors import AuthenticationError, FetchError
from hivegate.httpclient.guard import GuardedHTTPClient

pytestmark = pytest.mark.anyio


def verifier_for(jwks: JWKSCache, idp: LocalIdP) -> JWTVerifier:
    return JWTVerifier(jwks, issuer=idp.issuer, audience=AUDIENCE)


async def test_concurrent_first_requests_share_one_fetch(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey
) -> None:
    verifier = verifier_for(JWKSCache(http, idp.jwks_url), idp)
    tokens = [idp.token(rsa_key, jti=str(i)) for i in range(20)]
    principals = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert {p.subject for p in principals} == {"alice"}
    assert idp.count("jwks") == 1


async def test_unknown_kid_refetches_once_so_rotation_needs_no_restart(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey, rsa_key_2: RSAKey
) -> None:
    clock = FakeClock(1000.0)
    verifier = verifier_for(JWKSCache(http, idp.jwks_url, refetch_interval=10, clock=clock), idp)
    await verifier.verify(idp.token(rsa_key))
    assert idp.count("jwks") == 1

    clock.advance(10)
    idp.published = [rsa_key_2]  # the issuer rotates: new key in, old key out
    principal = await verifier.verify(idp.token(rsa_key_2, sub="bob"))
    assert principal.subject == "bob"
    assert idp.count("jwks") == 2


async def test_unknown_kid_refetch_is_rate_limited(idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    clock = FakeClock(1000.0)
    verifier = verifier_for(JWKSCache(http, idp.jwks_url, refetch_interval=10, clock=clock), idp)
    await verifier.verify(idp.token(rsa_key))
    assert idp.count("jwks") == 1

    for i in range(25):  # a flood of tokens naming keys the issuer never had
        with pytest.raises(AuthenticationError, match="unknown key"):
            await verifier.verify(idp.token(rsa_key, kid=f"bogus-{i}"))
    assert idp.count("jwks") == 1  # within 10 s of the last fetch: no refetch at all

    clock.advance(10)
    await asyncio.gather(
        *(verifier.verify(idp.token(rsa_key, kid=f"bogus-{i}")) for i in range(10)), return_exceptions=True
    )
    assert idp.count("jwks") == 2  # one refetch for ten concurrent misses


async def test_stale_keys_are_refreshed_so_withdrawn_keys_stop_working(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey, rsa_key_2: RSAKey
) -> None:
    clock = FakeClock(1000.0)
    jwks = JWKSCache(http, idp.jwks_url, max_age=3600, clock=clock)
    assert await jwks.get("rsa-1") is not None
    idp.published = [rsa_key_2]
    assert await jwks.get("rsa-1") is not None  # still fresh: no fetch
    clock.advance(3601)
    assert await jwks.get("rsa-1") is not None  # stale: served while the refresh runs
    await wait_until(lambda: idp.count("jwks") == 2)
    with anyio.fail_after(5):
        while await jwks.get("rsa-1") is not None:  # withdrawn once the refresh has succeeded
            await anyio.sleep(0.005)
    assert await jwks.get("rsa-2") is not None
    assert idp.count("jwks") == 2


async def test_stale_keys_answer_at_once_while_the_refresh_is_slow(
    idp: LocalIdP, http: GuardedHTTPClient, rsa_key: RSAKey
) -> None:
    clock = FakeClock(1000.0)
    issuer_slow = asyncio.Event()
    lookups = 0

    async def url() -> str:
        nonlocal lookups
        lookups += 1
        if lookups > 1:
            await issuer_slow.wait()  # the refresh hangs until the test lets it go
        return idp.jwks_url

    verifier = verifier_for(JWKSCache(http, url, max_age=3600, clock=clock), idp)
    await verifier.verify(idp.token(rsa_key, jti="first"))
    clock.advance(3601)
    try:
        with anyio.fail_after(2):  # new tokens signed with a known key do not wait for the refresh
            assert (await verifier.verify(idp.token(rsa_key, jti="stale"))).subject == "alice"
            await wait_until(lambda: lookups == 2)  # the refresh has started, and hangs
            for i in range(5):
                assert (await verifier.verify(idp.token(rsa_key, jti=str(i)))).subject == "alice"
        assert lookups == 2  # one background refresh, however many requests noticed the stale set
    finally:
        issuer_slow.set()
    await wait_until(lambda: idp.count("jwks") == 2)


async def test_a_failed_refresh_keeps_the_known_keys(
    idp: LocalIdP, http: GuardedHTTPClient, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(1000.0)
    urls = iter([idp.jwks_url, "http://127.0.0.1:1/jwks"])

    async def url() -> str:
        return next(urls)

    jwks = JWKSCache(http, url, max_age=60, refetch_interval=10, clock=clock)
    assert await jwks.get("rsa-1") is not None
    clock.advance(61)
    assert await jwks.get("rsa-1") is not None
    await wait_until(lambda: "JWKS refresh failed" in caplog.text)  # nothing listens on port 1
    assert await jwks.get("rsa-1") is not None  # old key kept, no new attempt within 10 s (`urls` is spent)


async def test_no_keys_at_all_is_an_invalid_token_not_a_crash(http: GuardedHTTPClient, rsa_key: RSAKey) -> None:
    jwks = JWKSCache(http, "http://127.0.0.1:1/jwks")
    with pytest.raises(FetchError):
        await jwks.get("rsa-1")


async def test_auth_token_file_is_sent_and_reread_on_each_fetch(
    idp: LocalIdP, http: GuardedHTTPClient, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("sa-token-1\n")
    clock = FakeClock(1000.0)
    jwks = JWKSCache(http, idp.jwks_url, auth_token_file=str(token_file), clock=clock)
    assert await jwks.get("rsa-1") is not None
    token_file.write_text("sa-token-2\n")  # the kubelet rotated the projected token
    clock.advance(10)
    assert await jwks.get("unknown") is None
    assert idp.jwks_auth == ["Bearer sa-token-1", "Bearer sa-token-2"]


async def test_no_authorization_header_without_token_file(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    await JWKSCache(http, idp.jwks_url).get("rsa-1")
    assert idp.jwks_auth == [None]


def test_parse_jwks_keeps_only_usable_signature_keys(rsa_key: RSAKey) -> None:
    good = rsa_key.as_dict(private=False)
    doc = {
        "keys": [
            good,
            {**good, "kid": "enc-key", "use": "enc"},
            {**good, "kid": None},
            OctKey.generate_key(256, parameters={"kid": "hmac"}).as_dict(),
            {"kty": "RSA", "kid": "broken", "n": "AQAB"},
            "not-a-key",
        ]
    }
    assert list(parse_jwks(doc)) == ["rsa-1"]
    with pytest.raises(FetchError, match="no 'keys' list"):
        parse_jwks({"keys": "nope"})
