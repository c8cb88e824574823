"""Authorization codes expire by the server's clock; tokens issued before a key rotation keep working after it
(signing keys: new first, old second, every one published; HMAC keys: new first, old still verifying)."""

from __future__ import annotations

import pytest
from authserver_fakes import ISSUER, RESOURCE, login, redeem, refresh, server
from joserfc.jwk import ECKey, OKPKey

from hivegate.authn.jwks import StaticKeys
from hivegate.authn.jwt import JWTVerifier
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.settings import Lifespans
from hivegate.errors import AuthenticationError
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def test_an_expired_authorization_code_is_invalid_grant() -> None:
    clock = Clock()
    s = server(clock=clock)
    code = (await login(s))["code"]
    clock.now += 600 + 1  # the default lifespan, 10 minutes, and a second
    with pytest.raises(OAuthError) as expired:
        await redeem(s, code)
    assert expired.value.error == "invalid_grant"
    assert "expired" in expired.value.description


async def test_a_code_is_good_until_its_lifespan_ends() -> None:
    clock = Clock()
    s = server(clock=clock)
    code = (await login(s))["code"]
    clock.now += 599
    assert "access_token" in await redeem(s, code)


async def test_a_configured_code_lifespan_is_honoured() -> None:
    clock = Clock()
    s = server(clock=clock, lifespans=Lifespans(auth_code=30.0))
    code = (await login(s))["code"]
    clock.now += 31
    with pytest.raises(OAuthError) as expired:
        await redeem(s, code)
    assert expired.value.error == "invalid_grant"


def pem(key: ECKey | OKPKey) -> bytes:
    return key.as_pem(private=True)


async def test_tokens_issued_before_a_rotation_stay_valid_after_it() -> None:
    old_sig, new_sig = pem(ECKey.generate_key("P-256")), pem(OKPKey.generate_key("Ed25519"))
    old_mac, new_mac = b"o" * 32, b"n" * 32
    store = MemoryStore()  # shared: the same storage before and after the restart with rotated keys
    before = server(keys=SigningKeys.from_pems([old_sig]), hmac_keys=HMACKeys([old_mac]), store=store)
    issued = await redeem(before, (await login(before))["code"])
    pending_code = (await login(before))["code"]
    another_code = (await login(before))["code"]

    after = server(keys=SigningKeys.from_pems([new_sig, old_sig]), hmac_keys=HMACKeys([new_mac, old_mac]), store=store)
    # the gateway's own verifier (as `build` makes it) accepts the access token signed by the old key
    verifier = JWTVerifier(StaticKeys(after.keys.jwks()), issuer=ISSUER, audience=RESOURCE)
    principal = await verifier.verify(issued["access_token"])
    assert principal.subject == "user-1"
    # a code and a refresh token HMAC'd under the old key are accepted
    refreshed = await refresh(after, issued["refresh_token"])
    redeemed = await redeem(after, pending_code)
    # what is issued now is signed and HMAC'd with the new keys
    new_only = JWTVerifier(StaticKeys(SigningKeys.from_pems([new_sig]).jwks()), issuer=ISSUER, audience=RESOURCE)
    for token in (refreshed["access_token"], redeemed["access_token"]):
        assert (await new_only.verify(token)).subject == "user-1"
    assert HMACKeys([old_mac]).check("hgr", refreshed["refresh_token"]) is None
    assert HMACKeys([new_mac]).check("hgr", refreshed["refresh_token"]) is not None

    # once the old keys are dropped, what they made is refused
    dropped = server(keys=SigningKeys.from_pems([new_sig]), hmac_keys=HMACKeys([new_mac]), store=store)
    with pytest.raises(OAuthError) as old_code:
        await redeem(dropped, another_code)
    assert old_code.value.error == "invalid_grant"
    with pytest.raises(AuthenticationError):
        await JWTVerifier(StaticKeys(dropped.keys.jwks()), issuer=ISSUER, audience=RESOURCE).verify(
            issued["access_token"]
        )
    await store.aclose()
