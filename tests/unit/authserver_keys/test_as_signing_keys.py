"""The authorization server's keys: PEM signing keys of every supported type sign tokens that verify, the JWKS
publishes every key under its RFC 7638 thumbprint, rotation keeps old tokens valid, and bad keys are refused."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import warnings
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils, x25519

from hivegate.authn.jwks import StaticKeys
from hivegate.authn.jwt import JWTVerifier
from hivegate.authserver.build import embedded_auth_server
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.settings import AuthServerConfig, StorageConfig, UpstreamConfig
from hivegate.errors import AuthenticationError, ConfigError

pytestmark = pytest.mark.anyio

ISSUER = "https://mcp.example.com"
AUDIENCE = "https://mcp.example.com/mcp"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def pem_of(key: Any) -> bytes:
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@functools.cache
def private_key(kind: str) -> PrivateKey:
    """One key per kind for the whole module (RSA keys are slow to make)."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(65537, int(kind[3:]) if kind[3:] else 2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    return ed25519.Ed25519PrivateKey.generate()


def pem(kind: str) -> bytes:
    return pem_of(private_key(kind))


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 section 3: SHA-256 over the required members, sorted, without whitespace."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def verify_with_cryptography(token: str, key: PrivateKey) -> dict[str, Any]:
    """Check a JWS signature with `cryptography` alone (not joserfc), then return the header."""
    head, payload, signature = token.split(".")
    signed, sig = f"{head}.{payload}".encode(), b64decode(signature)
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        size = len(sig) // 2  # JWS: r || s, fixed width (RFC 7518 section 3.4)
        der = utils.encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
        public.verify(der, signed, ec.ECDSA(hashes.SHA256() if size == 32 else hashes.SHA384()))
    else:
        public.verify(sig, signed)
    return dict(json.loads(b64decode(head)))


def verifier(keys: SigningKeys) -> JWTVerifier:
    """The gateway's own verifier for its tokens, made as `build` makes it: from the published JWKS."""
    return JWTVerifier(StaticKeys(keys.jwks()), issuer=ISSUER, audience=AUDIENCE)


def claims(sub: str = "alice") -> dict[str, Any]:
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": 1, "exp": 4_000_000_000}


# -- signing --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "alg"), [("rsa", "RS256"), ("rsa3072", "RS256"), ("ec", "ES256"), ("ec384", "ES384"), ("ed25519", "EdDSA")]
)
async def test_each_key_type_signs_tokens_that_verify(kind: str, alg: str) -> None:
    keys = SigningKeys.from_pems([pem(kind)])
    assert not keys.ephemeral
    assert keys.current.alg == alg
    assert keys.algorithms == [alg]
    token = keys.sign(claims())
    header = verify_with_cryptography(token, private_key(kind))
    assert header == {"alg": alg, "kid": keys.current.kid, "typ": "at+jwt"}
    assert (await verifier(keys).verify(token)).subject == "alice"


async def test_a_token_signed_by_another_key_does_not_verify() -> None:
    token = SigningKeys.from_pems([pem("ec")]).sign(claims())
    with pytest.raises(AuthenticationError):
        await verifier(SigningKeys.from_pems([pem("ed25519")])).verify(token)


def test_the_jwks_publishes_every_key_public_only_under_its_thumbprint() -> None:
    kinds = ["rsa", "ec", "ed25519"]
    keys = SigningKeys.from_pems([pem(k) for k in kinds])
    published = keys.jwks()["keys"]
    assert [k["kty"] for k in published] == ["RSA", "EC", "OKP"]
    assert [k["alg"] for k in published] == ["RS256", "ES256", "EdDSA"]
    assert keys.algorithms == ["ES256", "EdDSA", "RS256"]
    for jwk, kind in zip(published, kinds, strict=True):
        assert jwk["kid"] == rfc7638_thumbprint(jwk)
        assert jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk), "private members published"
        assert keys.public_key(jwk["kid"]) is not None
        assert jwk["kid"] == SigningKeys.from_pems([pem(kind)]).current.kid  # the same key, the same kid
    assert len({k["kid"] for k in published}) == 3
    assert keys.current.kid == published[0]["kid"]  # the first key signs


def test_the_rsa_thumbprint_is_computed_from_the_public_numbers() -> None:
    key = private_key("rsa")
    assert isinstance(key, rsa.RSAPrivateKey)
    numbers = key.public_key().public_numbers()

    def b64int(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    expected = rfc7638_thumbprint({"kty": "RSA", "n": b64int(numbers.n), "e": b64int(numbers.e)})
    assert SigningKeys.from_pems([pem("rsa")]).current.kid == expected


async def test_a_token_signed_before_a_rotation_verifies_after_it() -> None:
    before = SigningKeys.from_pems([pem("rsa")])
    old_token = before.sign(claims("before"))
    after = SigningKeys.from_pems([pem("ec"), pem("rsa")])  # new key first, old second
    assert [k["kid"] for k in after.jwks()["keys"]] == [after.current.kid, before.current.kid]
    assert (await verifier(after).verify(old_token)).subject == "before"
    new_token = after.sign(claims("after"))
    assert verify_with_cryptography(new_token, private_key("ec"))["kid"] == after.current.kid
    assert (await verifier(after).verify(new_token)).subject == "after"
    with pytest.raises(AuthenticationError):  # the new key alone no longer knows the old tokens
        await verifier(SigningKeys.from_pems([pem("ec")])).verify(old_token)


def test_no_signing_keys_means_one_ephemeral_es256_key() -> None:
    keys = SigningKeys.from_pems([])
    assert keys.ephemeral
    assert keys.current.alg == "ES256"
    assert keys.current.kid == rfc7638_thumbprint(keys.jwks()["keys"][0])
    assert SigningKeys.from_pems([]).current.kid != keys.current.kid


# -- refused keys ----------------------------------------------------------------------------------------------------


def public_pem(kind: str) -> bytes:
    public = private_key(kind).public_key()
    return bytes(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.mark.parametrize(
    ("pems", "message"),
    [
        ([public_pem("rsa")], "keys[0]: is a public key; a private key is needed to sign"),
        ([pem("ec"), public_pem("ed25519")], "keys[1]: is a public key; a private key is needed to sign"),
        ([pem("rsa1024")], "keys[0]: RSA keys must have at least 2048 bits"),
        ([pem("rsa"), pem("ec"), pem("rsa")], "keys[2]: the same key is already listed at [0]"),
        ([pem_of(x25519.X25519PrivateKey.generate())], "keys[0]: OKP keys must be Ed25519, got X25519"),
        ([b"not a key"], "keys[0]: not a PEM private key (RSA, EC or Ed25519)"),
    ],
)
def test_bad_signing_keys_are_refused_in_one_line_naming_the_entry(pems: list[bytes], message: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ConfigError) as refused:
            SigningKeys.from_pems(pems, where="keys")
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)
    assert not caught, [str(w.message) for w in caught]  # joserfc's "Key size should be >= 2048 bits" is silenced


# -- HMAC keys ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["hgc", "hgr"])  # authorization codes and refresh tokens
def test_an_opaque_token_made_with_the_old_hmac_key_is_accepted_after_rotation(prefix: str) -> None:
    old, new = b"o" * 32, b"n" * 32
    token = HMACKeys([old]).mint(prefix)
    rotated = HMACKeys([new, old])  # new first (mints), old second (still verifies)
    assert rotated.check(prefix, token.token) == token.lookup
    minted = rotated.mint(prefix)
    assert HMACKeys([new]).check(prefix, minted.token) == minted.lookup
    assert HMACKeys([old]).check(prefix, minted.token) is None  # the new key minted it
    assert HMACKeys([new]).check(prefix, token.token) is None  # once the old key is dropped
    assert rotated.check("hgr" if prefix == "hgc" else "hgc", token.token) is None  # a code is no refresh token


def test_a_forged_or_mangled_opaque_token_is_refused() -> None:
    keys = HMACKeys([b"k" * 32])
    token = keys.mint("hgr").token
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), token + "x", "hgr_" + "A" * 43 + ".AAAA", "", "hgr"):
        assert keys.check("hgr", bad) is None


# -- the ephemeral-keys warning ----------------------------------------------------------------------------------------


def config(*, signing: tuple[bytes, ...] = (), hmac_keys: tuple[bytes, ...] = ()) -> AuthServerConfig:
    return AuthServerConfig(
        issuer=ISSUER,
        upstreams=(UpstreamConfig("okta", "oidc", "cid", issuer_url="https://idp.example"),),
        signing_keys=signing,
        hmac_keys=hmac_keys,
        storage=StorageConfig(type="memory"),
    )


@pytest.mark.parametrize(
    ("signing", "hmac_keys", "named"),
    [
        ((), (), "no signing keys and HMAC keys configured"),
        (("ec",), (), "no HMAC keys configured"),
        ((), (b"k" * 32,), "no signing keys configured"),
        (("ec",), (b"k" * 32,), None),
    ],
)
async def test_ephemeral_keys_are_announced_loudly(
    caplog: pytest.LogCaptureFixture,
    signing: tuple[str, ...],
    hmac_keys: tuple[bytes, ...],
    named: str | None,
) -> None:
    caplog.set_level(logging.WARNING, logger="hivegate.authserver")
    cfg = config(signing=tuple(pem(k) for k in signing), hmac_keys=hmac_keys)
    embedded = embedded_auth_server(cfg, server_name="t", mcp_path="/mcp", resource_url=None)
    try:
        warned = [
            r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "ephemeral" in r.getMessage()
        ]
        if named is None:
            assert warned == []
        else:
            assert len(warned) == 1
            assert named in warned[0]
            assert "dies when hivegate stops" in warned[0]
        assert embedded.server.keys.ephemeral == (not signing)
    finally:
        await embedded.aclose()
