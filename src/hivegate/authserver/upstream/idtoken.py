"""OpenID Connect Core 1.0 section 3.1.3.7: validating an upstream's ID token.

The signature must verify with a key of the upstream's JWKS, picked by `kid`, with an asymmetric algorithm named in
the token's header (RS*, PS*, ES*, EdDSA; never `none` or HMAC; see `hivegate.authn.jwt.verify_signature`). Then
`iss` equals the issuer exactly, `aud` names our client id (with several audiences, `azp` must be our client id; a
present `azp` always must), `exp` has not passed and `iat` is not in the future (both give or take the skew), `sub`
is a non-empty string, and `nonce` equals the one sent with the authorization request (section 3.1.2.1). A refreshed
ID token (section 12.2) is checked the same way without the nonce.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

from hivegate.authn.claims import audience_contains, numeric_date
from hivegate.authn.jwks import KeySource
from hivegate.authn.jwt import verify_signature
from hivegate.authserver.upstream.base import UpstreamError
from hivegate.errors import AuthenticationError, FetchError, UnsafeURLError

__all__ = ["IDTokenValidator"]

logger = logging.getLogger(__name__)


class IDTokenValidator:
    """Validates the ID tokens one upstream issues to one client."""

    def __init__(
        self,
        jwks: KeySource,
        *,
        issuer: str,
        client_id: str,
        clock_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._client_id = client_id
        self._skew = clock_skew
        self._clock = clock

    async def validate(self, id_token: str, *, nonce: str | None) -> dict[str, Any]:
        """The ID token's claims; `UpstreamError` (`server_error`, or `temporarily_unavailable` when the upstream's
        keys cannot be fetched) when it is not valid. `nonce=None` skips the nonce check (refreshed tokens)."""
        try:
            claims = await verify_signature(id_token, self._jwks)
        except AuthenticationError as exc:
            if isinstance(exc.__cause__, FetchError | UnsafeURLError):
                raise UpstreamError("temporarily_unavailable", "the upstream's signing keys are unavailable") from None
            raise _logged(_invalid(exc.description[:1].lower() + exc.description[1:])) from None
        try:
            self.check(claims, nonce=nonce)
        except UpstreamError as exc:
            raise _logged(exc) from None
        return claims

    def check(self, claims: dict[str, Any], *, nonce: str | None) -> None:
        """The checks after the signature's (`UpstreamError` naming the first that fails; nothing is logged, so a
        caller that refuses many tokens can bound its own log)."""
        if claims.get("iss") != self._issuer:
            raise _invalid("its issuer ('iss') is not the upstream's")
        aud = claims.get("aud")
        if not audience_contains(aud, self._client_id):
            raise _invalid("its audience ('aud') does not include our client id")
        azp = claims.get("azp")
        if (isinstance(aud, list) and len(aud) > 1 and azp is None) or (azp is not None and azp != self._client_id):
            raise _invalid("its authorized party ('azp') is not our client id")
        try:
            exp, iat = numeric_date(claims, "exp"), numeric_date(claims, "iat")
        except AuthenticationError as exc:
            raise _invalid(exc.description) from None
        now = self._clock()
        if exp is None or iat is None:
            raise _invalid("it has no 'exp' or no 'iat'")
        if now > exp + self._skew:
            raise _invalid("it has expired")
        if iat > now + self._skew:
            raise _invalid("it was issued in the future ('iat')")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _invalid("it has no subject ('sub')")
        if nonce is not None:
            got = claims.get("nonce")
            if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
                raise _invalid("its nonce does not match the login's")


def _invalid(reason: str) -> UpstreamError:
    return UpstreamError("server_error", f"the upstream's ID token is not valid: {reason}")


def _logged(error: UpstreamError) -> UpstreamError:
    logger.warning("refusing an upstream ID token: %s", error.description)
    return error
