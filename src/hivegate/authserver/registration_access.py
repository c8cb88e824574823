"""RFC 7591 section 3: protected dynamic client registration, with an initial access token.

When the config's `registration` section is set, `POST /oauth/register` needs `Authorization: Bearer <token>` where
the token is one of the configured initial access tokens (compared in constant time; several while rotating) or,
with `allowRegistrationScope`, an access token of this server (signature, expiry, audience and revocation checked
as at the MCP endpoint) carrying the scope `client:register`. Anything else is refused with the RFC 6750 section
3.1 error `invalid_token` (HTTP 401), as RFC 7591 section 3 asks.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from hivegate.authserver.errors import OAuthError
from hivegate.authserver.settings import REGISTRATION_SCOPE, RegistrationConfig
from hivegate.core.principal import Principal
from hivegate.errors import AuthenticationError
from hivegate.oauth.bearer import extract_bearer

__all__ = ["RegistrationAccess"]

logger = logging.getLogger("hivegate.authserver")

Verify = Callable[[str], Awaitable[Principal]]


class RegistrationAccess:
    """Decides whether a registration request may go on. `verify` authenticates an `Authorization` header holding a
    token of this server (the gateway's authenticator); needed only with `allow_registration_scope`."""

    def __init__(self, cfg: RegistrationConfig, *, verify: Verify | None = None) -> None:
        if cfg.allow_registration_scope and verify is None:
            raise ValueError("allow_registration_scope needs a verifier for this server's tokens")
        self._tokens = tuple(t.encode() for t in cfg.initial_access_tokens)
        self._scope_allowed = cfg.allow_registration_scope
        self._verify = verify

    @property
    def protected(self) -> bool:
        return bool(self._tokens) or self._scope_allowed

    async def check(self, authorization: str | None, *, remote: str) -> None:
        """Return when the request may register a client; `OAuthError("invalid_token", status=401)` otherwise."""
        if not self.protected:
            return
        try:
            token = extract_bearer(authorization)
        except AuthenticationError:
            raise _refused("registration requires an initial access token (Authorization: Bearer)") from None
        presented = token.encode()
        matched = False
        for expected in self._tokens:  # every one compared: the time taken does not tell which one matched
            matched |= hmac.compare_digest(presented, expected)
        if matched:
            return
        if self._scope_allowed and self._verify is not None and token.count(".") == 2:
            try:
                principal = await self._verify(f"Bearer {token}")
            except AuthenticationError as exc:
                logger.info("registration refused for %s: token not accepted (%s)", remote, exc.description)
                raise _refused("the initial access token is not valid") from None
            if REGISTRATION_SCOPE in principal.scopes:
                logger.info("registration allowed for %s by a %s token of %r", remote, REGISTRATION_SCOPE,
                            principal.subject)  # fmt: skip
                return
            logger.info("registration refused for %s: token of %r lacks %s", remote, principal.subject,
                        REGISTRATION_SCOPE)  # fmt: skip
            raise _refused(f"the token does not carry the {REGISTRATION_SCOPE} scope")
        logger.info("registration refused for %s: unknown initial access token", remote)
        raise _refused("the initial access token is not valid")


def _refused(description: str) -> OAuthError:
    return OAuthError("invalid_token", description, status=401)
