"""JWT access tokens (RFC 7519, signatures per RFC 7515; checks after RFC 9068 section 4 and RFC 8725).

Only asymmetric algorithms are accepted (RS*, PS*, ES*, EdDSA): `none` and HMAC are refused, so a token cannot be
signed with a public key posing as a shared secret. The `kid` header is required and picks the key; `iss` must equal
the issuer exactly; the audience must be in `aud`; `exp` is required; `nbf` and `iat` are honoured; `sub` is
required. Verified tokens are cached (token → Principal) until `exp`. An RFC 8693 `act` claim is kept as is.
"""

from __future__ import annotations

import binascii
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from hivegate.authn import claims as checks
from hivegate.authn.cache import PrincipalCache
from hivegate.authn.jwks import KeySource
from hivegate.core.principal import Principal
from hivegate.errors import FetchError, UnsafeURLError, invalid_token

__all__ = ["ALLOWED_ALGORITHMS", "JWTVerifier", "looks_like_jwt", "verify_signature"]

logger = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class _Registry(JWSRegistry):
    """joserfc's registry restricted to ALLOWED_ALGORITHMS, without its per-call SecurityWarning for `EdDSA`
    (RFC 9864 deprecates the name in favour of `Ed25519`, but issuers still sign with it)."""

    max_header_length = 4096  # room for x5c/x5t headers some issuers add

    def get_alg(self, name: str) -> JWSAlgModel:
        if name not in ALLOWED_ALGORITHMS:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


_REGISTRY = _Registry(algorithms=sorted(ALLOWED_ALGORITHMS), strict_check_header=False)


def looks_like_jwt(token: str) -> bool:
    """True when `token` is three base64url segments whose first decodes to a JSON object with `alg` (a JWS)."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        header = orjson.loads(urlsafe_b64decode(parts[0].encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return False
    return isinstance(header, dict) and "alg" in header


async def verify_signature(token: str, jwks: KeySource) -> dict[str, Any]:
    """The claims of a JWS signed by one of `jwks`'s keys with an allowed algorithm (never `none` or HMAC), the
    key picked by the `kid` header; `AuthenticationError("invalid_token", …)` otherwise. No claim is checked."""
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=_REGISTRY)
    except (JoseError, ValueError, UnicodeEncodeError) as exc:
        raise invalid_token("Malformed token") from exc
    header = obj.headers()
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none" or alg.upper().startswith("HS"):
        shown = repr(alg)[:24]  # the header is the caller's: keep the echo short
        raise invalid_token(f"Token algorithm {shown} is not allowed: only asymmetric signatures are accepted")
    if alg not in ALLOWED_ALGORITHMS:
        raise invalid_token(f"Token algorithm {repr(alg)[:24]} is not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise invalid_token("Token header has no 'kid'")
    try:
        key = await jwks.get(kid)
    except (FetchError, UnsafeURLError) as exc:
        logger.warning("cannot verify a token: signing keys unavailable: %s", exc)
        raise invalid_token("Unable to verify token: the issuer's signing keys are unavailable") from exc
    if key is None:
        raise invalid_token("Token is signed with an unknown key")
    key_alg = key.get("alg")
    if key_alg is not None and key_alg != alg:
        raise invalid_token("Token algorithm does not match its signing key")
    try:
        valid = jws.validate_compact(obj, key, registry=_REGISTRY)
    except JoseError:  # e.g. an EC key for an RS256 token
        valid = False
    if not valid:
        raise invalid_token("Invalid token signature")
    try:
        claims = orjson.loads(obj.payload or b"")
    except orjson.JSONDecodeError as exc:
        raise invalid_token("Malformed token claims") from exc
    if not isinstance(claims, dict):
        raise invalid_token("Malformed token claims")
    return claims


class JWTVerifier:
    """Verifies JWT bearer tokens against one issuer's JWKS (a `TokenVerifier`)."""

    def __init__(
        self,
        jwks: KeySource,
        *,
        issuer: str,
        audience: str,
        clock_skew: float = 60.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._skew = clock_skew
        self._clock = clock
        self._cache = PrincipalCache(cache_size, clock=clock)

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified earlier and not yet expired, without verifying anything."""
        return self._cache.get(token)

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; `AuthenticationError("invalid_token", …)` otherwise."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        return await self.verify_uncached(token)

    async def verify_uncached(self, token: str) -> Principal:
        """`verify` without the cache lookup, for a caller that has just missed with `cached`; caches the result."""
        return self._accept(token, await verify_signature(token, self._jwks))

    def _accept(self, token: str, claims: dict[str, Any]) -> Principal:
        now = self._clock()
        checks.check_issuer(claims, self._issuer, required=True)
        checks.check_audience(claims, self._audience, required=True)
        exp = checks.check_expiry(claims, now, self._skew, required=True)
        checks.check_not_before(claims, now, self._skew)
        subject = checks.require_subject(claims)
        principal = Principal(subject=subject, issuer=self._issuer, kind="jwt", claims=claims, expires_at=exp)
        self._cache.put(token, principal, exp)
        return principal
