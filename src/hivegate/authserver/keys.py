"""The authorization server's keys: JWT signing keys (published as a JWKS) and HMAC keys for opaque tokens.

Signing keys come from PEM (RSA → RS256, EC P-256/384/521 → ES256/384/512, Ed25519 → EdDSA); `kid` is the RFC 7638
thumbprint. The first key signs; **every** key is published, so tokens signed before a rotation stay verifiable
(ToolHive published only the first, its bug #6451). Without keys an ephemeral ES256 key is made (tokens die with the
process; the caller warns). A key that cannot sign (public, RSA under 2048 bits, OKP other than Ed25519, listed
twice) is a one-line `ConfigError` naming its entry, with joserfc's warnings about it silenced.

Opaque tokens (authorization codes, refresh tokens) are `<prefix>_<random>.<mac>`: 32 random bytes and an
HMAC-SHA256 over prefix and random, truncated to 16 bytes. A forged or mistyped token is refused before storage is
consulted; stores are keyed by a SHA-256 of the random part, so a leaked store holds no usable token. The first HMAC
key mints, every key verifies (rotation). The same secrets also give, through HKDF-SHA256 (RFC 5869), the keys that
seal credentials in the store (`sealing`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwt
from joserfc.errors import SecurityWarning, UnsupportedAlgorithmError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from hivegate.errors import ConfigError

__all__ = ["HMACKeys", "OpaqueToken", "SigningKey", "SigningKeys"]

_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_MAC_BYTES = 16

Key = RSAKey | ECKey | OKPKey
_SIGNING_ALGS = ("RS256", *_EC_ALGS.values(), "EdDSA")


class _SigningRegistry(JWSRegistry):
    """The algorithms our keys sign with, without joserfc's per-call SecurityWarning for `EdDSA` (RFC 9864
    deprecates the name in favour of `Ed25519`, but verifiers, hivegate's own included, expect `EdDSA`)."""

    def get_alg(self, name: str) -> JWSAlgModel:
        if name not in _SIGNING_ALGS:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


_REGISTRY = _SigningRegistry(algorithms=list(_SIGNING_ALGS))


@dataclass(frozen=True, slots=True)
class SigningKey:
    key: Key
    alg: str
    kid: str


def _signing_key(pem: bytes, where: str) -> SigningKey:
    last: Exception | None = None
    for cls in (RSAKey, ECKey, OKPKey):
        try:
            with warnings.catch_warnings():  # e.g. "Key size should be >= 2048 bits": refused below, in one line
                warnings.simplefilter("ignore", SecurityWarning)
                key: Key = cls.import_key(pem)
        except Exception as exc:  # joserfc raises various errors for a PEM of another type
            last = exc
            continue
        if not key.is_private:
            raise ConfigError(f"{where}: is a public key; a private key is needed to sign")
        if isinstance(key, RSAKey):
            if key.raw_value.key_size < 2048:
                raise ConfigError(f"{where}: RSA keys must have at least 2048 bits")
            alg = "RS256"
        elif isinstance(key, ECKey):
            alg = _EC_ALGS[key.curve_name]
        else:
            if key.curve_name != "Ed25519":
                raise ConfigError(f"{where}: OKP keys must be Ed25519, got {key.curve_name}")
            alg = "EdDSA"
        return SigningKey(key, alg, key.thumbprint())
    raise ConfigError(f"{where}: not a PEM private key (RSA, EC or Ed25519): {type(last).__name__}")


class SigningKeys:
    """The JWT signing keys: `sign()` uses the first, `jwks()` publishes all."""

    def __init__(self, keys: Sequence[SigningKey], *, ephemeral: bool = False) -> None:
        if not keys:
            raise ConfigError("at least one signing key is needed")
        self._keys = list(keys)
        self.ephemeral = ephemeral
        self._jwks = {"keys": [self._public(k) for k in self._keys]}

    @classmethod
    def from_pems(cls, pems: Sequence[bytes], *, where: str = "signingKeySecretRefs") -> SigningKeys:
        """Keys from PEM documents; without any, one ephemeral ES256 key (`ephemeral` is then True)."""
        if not pems:
            key = ECKey.generate_key("P-256")
            return cls([SigningKey(key, "ES256", key.thumbprint())], ephemeral=True)
        keys = [_signing_key(pem, f"{where}[{i}]") for i, pem in enumerate(pems)]
        seen: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k.kid in seen:
                raise ConfigError(f"{where}[{i}]: the same key is already listed at [{seen[k.kid]}]")
            seen[k.kid] = i
        return cls(keys)

    @property
    def current(self) -> SigningKey:
        return self._keys[0]

    @property
    def algorithms(self) -> list[str]:
        return sorted({k.alg for k in self._keys})

    def sign(self, claims: Mapping[str, Any]) -> str:
        key = self._keys[0]
        return jwt.encode({"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}, dict(claims), key.key, registry=_REGISTRY)

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def public_key(self, kid: str) -> Key | None:
        """The key with `kid` (to verify our own tokens in-process, without fetching our JWKS over HTTP)."""
        for k in self._keys:
            if k.kid == kid:
                return k.key
        return None

    @staticmethod
    def _public(k: SigningKey) -> dict[str, Any]:
        return {**k.key.as_dict(private=False), "kid": k.kid, "alg": k.alg, "use": "sig"}


@dataclass(frozen=True, slots=True)
class OpaqueToken:
    token: str  # what the client holds
    lookup: str  # what the store is keyed by


class HMACKeys:
    """Mint and check opaque tokens: the first key mints, any key verifies."""

    def __init__(self, keys: Sequence[bytes], *, ephemeral: bool = False) -> None:
        if not keys:
            raise ConfigError("at least one HMAC key is needed")
        self._keys = list(keys)
        self.ephemeral = ephemeral

    @classmethod
    def from_config(cls, keys: Sequence[bytes]) -> HMACKeys:
        """The configured keys; without any, one ephemeral random key (`ephemeral` is then True)."""
        return cls(keys) if keys else cls([secrets.token_bytes(32)], ephemeral=True)

    def derive(self, purpose: bytes) -> bytes:
        """A key for another purpose, derived from the current HMAC key."""
        return hmac.new(self._keys[0], b"hivegate derive: " + purpose, hashlib.sha256).digest()

    def hkdf(self, info: bytes) -> tuple[bytes, ...]:
        """One 32-byte key per configured secret (the current one first) for the purpose `info` (RFC 5869, no salt)."""
        return tuple(HKDF(hashes.SHA256(), 32, None, info).derive(key) for key in self._keys)

    def mint(self, prefix: str) -> OpaqueToken:
        raw = secrets.token_bytes(32)
        body = _b64(raw)
        mac = self._mac(self._keys[0], prefix, body)
        return OpaqueToken(f"{prefix}_{body}.{mac}", _lookup(prefix, raw))

    def check(self, prefix: str, token: str) -> str | None:
        """The store key of a token minted by us with `prefix`; None for anything else (forged, mangled, other)."""
        head, _, rest = token.partition("_")
        body, dot, mac = rest.partition(".")
        if head != prefix or not dot or len(token) > 128:
            return None
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        ok = False
        for key in self._keys:  # every key is tried: the time taken does not depend on which one matches
            ok |= hmac.compare_digest(self._mac(key, prefix, body), mac)
        return _lookup(prefix, raw) if ok and len(raw) == 32 else None

    @staticmethod
    def _mac(key: bytes, prefix: str, body: str) -> str:
        digest = hmac.new(key, f"{prefix}.{body}".encode(), hashlib.sha256).digest()
        return _b64(digest[:_MAC_BYTES])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _lookup(prefix: str, raw: bytes) -> str:
    return hashlib.sha256(prefix.encode() + b"." + raw).hexdigest()
