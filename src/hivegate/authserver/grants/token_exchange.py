"""RFC 8693 token exchange at `/oauth/token`: the embedded authorization server as a security token service.

A confidential client allowed the grant (`grantTypes: [token_exchange]` on a static client) presents a
`subject_token` and gets an access token of this server for one of its allowed audiences. Trusted subjects:

- access tokens this server issued (its own keys, `iss` = its issuer), for any of its audiences;
- JWTs signed by one of its `oidc` upstream providers (`iss` = the upstream's issuer, its JWKS) and meant for this
  server: access tokens for this server's client at that upstream or one of its `tokenExchange.acceptedAudiences`,
  ID tokens only when issued to this server's client there. Whether a token is an ID token is decided from the token,
  whatever `subject_token_type` says (`subject_token`); one labelled `id_token` that is not one is refused.

The new token's scopes are the subject token's (`scope` or `scp`), narrowed to the supported scopes and the client's
`scope`; a `scope` parameter may only narrow them further (`invalid_scope` otherwise: an exchange never widens what
the subject could do).

Every subject must be unexpired, not from the future (`nbf`, `iat`), all give or take the configured clock skew,
and name a subject (`sub`). Every refusal is an RFC 6749 / RFC 8693 error whose description names the rule, and is
logged (logger `hivegate.authserver`, at a bounded rate) with the client and the subject (`sub` once the token is
verified, else the issuer it claims), never the token.

The new token keeps `sub`, `name`, `email` and group claims, carries `act: {sub: <client_id>}` (the client acts for
the subject), lives at most as long as the subject token and the configured access-token lifespan, and comes without
a refresh token. `actor_token` is not supported.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import orjson

from hivegate.authn.claims import check_not_before, numeric_date
from hivegate.authn.jwks import StaticKeys
from hivegate.authn.jwt import verify_signature
from hivegate.authserver.clients import Client
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.grants.subject_token import AudienceRule, is_id_token
from hivegate.authserver.keys import SigningKeys
from hivegate.authserver.pkce import random_id
from hivegate.authserver.revocation import FAMILY_CLAIM
from hivegate.authserver.settings import TOKEN_EXCHANGE_GRANT
from hivegate.authserver.upstream.base import UpstreamError
from hivegate.errors import AuthenticationError
from hivegate.observe.ratelimit import RateLimitedLog

__all__ = ["ACCESS_TOKEN_TYPE", "TOKEN_EXCHANGE_GRANT", "TokenExchangeGrant", "TrustedIssuer"]

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
SUBJECT_TYPES = frozenset({ACCESS_TOKEN_TYPE, JWT_TYPE, ID_TOKEN_TYPE})
CARRIED_CLAIMS = ("name", "email", "preferred_username", "groups", "roles", "cognito:groups", "realm_access")

logger = logging.getLogger("hivegate.authserver")


@runtime_checkable
class TrustedIssuer(Protocol):
    """An upstream whose JWTs may be exchanged."""

    @property
    def issuer(self) -> str: ...

    @property
    def client_id(self) -> str:
        """This server's client id at the upstream."""
        ...

    @property
    def accepted_audiences(self) -> Sequence[str]:
        """Other audiences its access tokens may name to be exchanged here."""
        ...

    async def signed_claims(self, token: str) -> dict[str, Any]:
        """The claims of a JWT it signed (`AuthenticationError` otherwise); no claim checked."""
        ...

    def check_id_token(self, claims: dict[str, Any]) -> None:
        """`UpstreamError` unless `claims` are an ID token's issued to this server's client."""
        ...


class TokenExchangeGrant:
    def __init__(
        self,
        *,
        issuer: str,
        keys: SigningKeys,
        audiences: Sequence[str],
        scopes_supported: Sequence[str],
        access_lifespan: float,
        upstreams: Sequence[TrustedIssuer],
        clock: Callable[[], float],
        revoked: Callable[[Mapping[str, Any]], Awaitable[bool]],
        clock_skew: float = 60.0,
    ) -> None:
        """`clock_skew`: seconds of leeway for the subject token's `exp`, `nbf` and `iat`."""
        self._issuer = issuer
        self._keys = keys
        self._own = StaticKeys(keys.jwks())
        self._audiences = tuple(audiences)
        self._scopes = set(scopes_supported)
        self._lifespan = access_lifespan
        self._upstreams = {u.issuer: u for u in upstreams if u.issuer}
        self._clock = clock
        self._revoked = revoked
        self._skew = clock_skew
        self._refusals = RateLimitedLog(logger, rate=5.0, burst=20)

    async def exchange(self, client: Client, form: Mapping[str, str], targets: Sequence[str]) -> dict[str, Any]:
        """The token response for one exchange request (`form`: single-valued parameters; `targets`: every
        `audience` and `resource` given); `OAuthError` otherwise, logged."""
        who = _Subject(form.get("subject_token", ""))
        try:
            return await self._exchange(client, form, targets, who)
        except OAuthError as exc:
            self._refusals.log(
                logging.WARNING,
                "token exchange refused: client %r, subject %s: %s: %s",
                client.client_id,
                who,
                exc.error,
                exc.description,
            )
            raise

    async def _exchange(
        self, client: Client, form: Mapping[str, str], targets: Sequence[str], who: _Subject
    ) -> dict[str, Any]:
        if client.public:
            raise OAuthError("unauthorized_client", "token exchange needs a confidential client")
        if TOKEN_EXCHANGE_GRANT not in client.grant_types:
            raise OAuthError("unauthorized_client", "this client may not use token exchange")
        if form.get("actor_token") or form.get("actor_token_type"):
            raise OAuthError("invalid_request", "actor_token is not supported")
        token, token_type = form.get("subject_token", ""), form.get("subject_token_type", "")
        if not token or not token_type:
            raise OAuthError("invalid_request", "subject_token and subject_token_type are required")
        if token_type not in SUBJECT_TYPES:
            raise OAuthError("invalid_request", f"subject_token_type {token_type[:80]!r} is not supported")
        requested = form.get("requested_token_type", "")
        if requested not in ("", ACCESS_TOKEN_TYPE, JWT_TYPE):
            raise OAuthError("invalid_request", "only access tokens can be issued (requested_token_type)")
        audience = self._audience(targets)
        subject = await self._subject(token, token_type, who)
        scope = self._scope(form.get("scope", ""), subject, client)
        return self._issue(client, subject, audience, scope)

    async def own_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a JWT this server signed (no claim checked), or None when it is not one."""
        if _unverified_issuer(token) != self._issuer:
            return None
        try:
            return await verify_signature(token, self._own)
        except AuthenticationError:
            return None

    def _audience(self, targets: Sequence[str]) -> str:
        wanted = list(dict.fromkeys(targets))
        if len(wanted) > 1:
            raise OAuthError("invalid_target", "ask for one audience (or resource) per exchange")
        if not wanted:
            if len(self._audiences) == 1:
                return self._audiences[0]
            raise OAuthError("invalid_target", "name the audience (or resource) the token is for")
        if wanted[0] not in self._audiences:
            raise OAuthError("invalid_target", "this server does not issue tokens for that audience")
        return wanted[0]

    def _scope(self, asked: str, subject: Mapping[str, Any], client: Client) -> list[str]:
        """The new token's scopes: what the subject token holds (`scope`, or `scp` as Okta and Entra ID write it),
        narrowed to what this server supports and the client may have; a requested scope outside that is refused,
        so an exchange never widens what the subject could do."""
        held = _held_scopes(subject)
        allowed = [s for s in held if s in self._scopes]
        if client.scope:
            permitted = set(client.scope.split())
            allowed = [s for s in allowed if s in permitted]
        if not asked:
            return allowed
        scopes = list(dict.fromkeys(asked.split()))
        for scope in scopes:
            shown = repr(scope[:60])
            if scope not in self._scopes:
                raise OAuthError("invalid_scope", f"scope {shown} is not supported")
            if scope not in held:
                raise OAuthError("invalid_scope", f"scope {shown} is not held by the subject token")
            if scope not in allowed:
                raise OAuthError("invalid_scope", f"scope {shown} is not allowed for this client")
        return scopes

    async def _subject(self, token: str, token_type: str, who: _Subject) -> dict[str, Any]:
        issuer = _unverified_issuer(token)
        try:
            if issuer == self._issuer:
                claims = who.verified(await verify_signature(token, self._own))
                if token_type == ID_TOKEN_TYPE:
                    raise OAuthError("invalid_request", "subject_token_type is id_token, but the subject token is "
                                     "an access token of this server")  # fmt: skip
                if await self._revoked(claims):
                    raise OAuthError("invalid_grant", "the subject token has been revoked")
            elif issuer in self._upstreams:
                upstream = self._upstreams[issuer]
                claims = who.verified(await upstream.signed_claims(token))
                _meant_for_us(upstream, _jose_header(token), claims, token_type)
            else:
                raise OAuthError("invalid_grant", "the subject token's issuer is not trusted by this server")
        except AuthenticationError as exc:
            raise OAuthError("invalid_grant", f"the subject token is not valid: {exc.description}") from None
        try:
            exp = numeric_date(claims, "exp")
        except AuthenticationError:
            exp = None
        now = self._clock()
        if exp is None or exp + self._skew <= now:
            raise OAuthError("invalid_grant", "the subject token has expired (or has no 'exp')")
        try:
            check_not_before(claims, now, self._skew)
        except AuthenticationError as exc:
            raise OAuthError("invalid_grant", f"the subject token is not valid: {exc.description}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise OAuthError("invalid_grant", "the subject token names no subject ('sub')")
        return claims

    def _issue(self, client: Client, subject: Mapping[str, Any], audience: str, scope: list[str]) -> dict[str, Any]:
        now = int(self._clock())
        exp = min(now + int(self._lifespan), int(subject["exp"]))
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject["sub"],
            "aud": audience,
            "exp": exp,
            "iat": now,
            "nbf": now,
            "jti": random_id(16),
            "client_id": client.client_id,
            "scope": " ".join(scope),
            "act": {"sub": client.client_id},
        }
        claims.update({k: subject[k] for k in CARRIED_CLAIMS if k in subject})
        if subject.get("iss") == self._issuer and FAMILY_CLAIM in subject:
            claims[FAMILY_CLAIM] = subject[FAMILY_CLAIM]  # revoking the login revokes what was exchanged from it
        return {
            "access_token": self._keys.sign(claims),
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": max(0, exp - now),
            "scope": " ".join(scope),
        }


def _meant_for_us(upstream: TrustedIssuer, header: Mapping[str, Any], claims: dict[str, Any], token_type: str) -> None:
    """`OAuthError` unless an upstream's verified token may be exchanged here (see `subject_token`)."""
    if is_id_token(header, claims):
        try:
            upstream.check_id_token(claims)
        except UpstreamError as exc:
            reason = exc.description.removeprefix("the upstream's ID token is not valid: ")
            raise OAuthError(
                "invalid_grant",
                f"the subject token is an ID token not valid for this server ({reason}): only ID tokens issued to "
                f"our client {upstream.client_id!r} at the upstream are exchanged",
            ) from None
        return
    if token_type == ID_TOKEN_TYPE:
        raise OAuthError("invalid_request", "subject_token_type is id_token, but the subject token is an access token")
    refusal = AudienceRule(upstream.client_id, upstream.accepted_audiences).refusal(claims)
    if refusal is not None:
        raise OAuthError("invalid_grant", refusal)


class _Subject:
    """Whom a refusal is about, for the log: the verified `sub` once known, else the issuer the token claims."""

    __slots__ = ("issuer", "sub")

    def __init__(self, token: str) -> None:
        self.sub: str | None = None
        self.issuer = _unverified_issuer(token)

    def verified(self, claims: dict[str, Any]) -> dict[str, Any]:
        """`claims`, whose signature has verified: their `sub` names the subject from now on."""
        sub = claims.get("sub")
        self.sub = sub if isinstance(sub, str) and sub else None
        return claims

    def __str__(self) -> str:
        if self.sub is not None:
            return f"sub={self.sub[:120]!r}"
        return f"iss={self.issuer[:120]!r} (unverified)" if self.issuer else "unknown"


def _held_scopes(claims: Mapping[str, Any]) -> list[str]:
    """The scopes a token holds, in order: `scope` (a space-separated string, RFC 8693 section 4.2) and `scp` (a
    list or a string, as Okta and Microsoft Entra ID write it)."""
    found: list[str] = []
    for name in ("scope", "scp"):
        value = claims.get(name)
        items = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
        found += [item for item in items if isinstance(item, str)]
    return list(dict.fromkeys(found))


def _unverified_issuer(token: str) -> str | None:
    """The `iss` a JWT claims, to pick the keys it must verify with (nothing is trusted yet)."""
    issuer = _segment(token, 1).get("iss")
    return issuer if isinstance(issuer, str) else None


def _jose_header(token: str) -> dict[str, Any]:
    """The JOSE header of a JWT (trusted once its signature, which covers it, has verified)."""
    return _segment(token, 0)


def _segment(token: str, index: int) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        value = orjson.loads(base64.urlsafe_b64decode(parts[index] + "=" * (-len(parts[index]) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return value if isinstance(value, dict) else {}
