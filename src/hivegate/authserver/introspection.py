"""RFC 7662 token introspection at `/oauth/introspect`: whether a token of this server is active, and what it says.

Who may ask (RFC 7662 section 2.1 requires the caller to be authorized, against token scanning): confidential
clients only. A public client's id is no credential (anyone can send it, and an access token names its client in
`client_id`), so letting public clients ask would let anyone holding a token probe it; `AuthorizationServer`
refuses them with `invalid_client`. A confidential client configured by the administrator (a static client, e.g.
the resource server a backend runs as) may introspect any token of this server: that is what a resource server is
for. A confidential client registered at run time (RFC 7591, or a metadata document) may introspect only the tokens
issued to it: registration is open to anyone, so it must not open every other client's tokens. Refresh tokens are
only ever introspected by the client they were issued to; a resource server never sees one. A token the caller may
not ask about is simply inactive (section 2.2: nothing about it is disclosed).

Active (section 2.2) are:

- access tokens of this server (a JWT signed with its keys, `iss` = its issuer, within `nbf`..`exp`) whose family,
  or, for an exchanged token (`act`, RFC 8693), whose own `jti`, is not revoked (`revocation.Revocations`). The
  answer carries `scope`, `client_id`, `sub`, `aud`, `iss`, `exp`, `iat`, `nbf`, `jti`, `act` (exchanged tokens)
  and `token_type: Bearer`;
- refresh tokens (opaque, `keys.HMACKeys`) still in the store, not yet rotated, whose family is not revoked and
  whose login session lasts. The answer carries `scope`, `client_id`, `sub`, `aud` (the resource), `iss`, `iat`,
  `exp` and `token_type: refresh_token`, so a resource server that checks for `Bearer` never takes one for an
  access token.

Everything else (unknown, malformed, expired, revoked, another issuer's) is `{"active": false}` and nothing more.
`token_type_hint` (section 2.1) only orders the two lookups; an unknown hint is ignored.

The same access token is introspected often (by every backend it reaches), so a verified one is kept in a bounded
LRU for at most `revocation.RECHECK` seconds and never past its `exp`, keyed by its SHA-256 (never the token itself).
A cached answer is still checked against the revocations on every request (in memory within `RECHECK`), so a
revocation made in this process counts at once and one made by another replica within `RECHECK`, as for the
gateway's own per-request check. A token that is not a JWT of this issuer, or whose signature fails, costs no store
access.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from hivegate.authserver.clients import Client
from hivegate.authserver.context import REFRESH_PREFIX, ServerContext
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.grants.token_exchange import TokenExchangeGrant
from hivegate.authserver.revocation import FAMILY_CLAIM, RECHECK, Revocations

__all__ = ["INACTIVE", "TokenIntrospection"]

INACTIVE: Final[Mapping[str, bool]] = {"active": False}
_ANSWERED: Final = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "act")
_CACHED: Final = 10_000  # verified access tokens kept in memory


class TokenIntrospection:
    def __init__(
        self,
        ctx: ServerContext,
        *,
        revocations: Revocations,
        exchange: TokenExchangeGrant,
        cache_size: int = _CACHED,
    ) -> None:
        self._ctx = ctx
        self._revocations = revocations
        self._exchange = exchange
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[dict[str, Any], float]] = OrderedDict()  # sha256 → (answer, until)

    async def introspect(self, client: Client, token: str, hint: str = "") -> dict[str, Any]:
        """The section 2.2 answer about `token` for `client` (authenticated); `invalid_client` for a public client."""
        if client.public:
            raise OAuthError("invalid_client", "token introspection needs a confidential client", status=401)
        if hint == "refresh_token":
            answer = await self._refresh(client, token) or await self._access(client, token)
        else:
            answer = await self._access(client, token) or await self._refresh(client, token)
        return answer or dict(INACTIVE)

    async def _access(self, client: Client, token: str) -> dict[str, Any] | None:
        now = self._ctx.clock()
        key = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            answer = cached[0]
            self._cache.move_to_end(key)
        else:
            if cached is not None:
                del self._cache[key]
            claims = await self._exchange.own_claims(token)
            if claims is None or not _current(claims, now):
                return None
            answer = {"active": True, **{k: claims[k] for k in _ANSWERED if k in claims}, "token_type": "Bearer"}
            if FAMILY_CLAIM in claims:
                answer[FAMILY_CLAIM] = claims[FAMILY_CLAIM]  # for the revocation check; never answered
            self._cache[key] = (answer, min(now + RECHECK, float(claims["exp"])))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        if await self._revocations.claims_revoked(answer):
            return None
        if not self._may_see(client, answer.get("client_id")):
            return None
        return {k: v for k, v in answer.items() if k != FAMILY_CLAIM}

    async def _refresh(self, client: Client, token: str) -> dict[str, Any] | None:
        lookup = self._ctx.hmac.check(REFRESH_PREFIX, token)
        if lookup is None:
            return None
        store = self._ctx.store
        grant = await store.get("refresh", lookup)
        if grant is None or grant.get("client_id") != client.client_id:
            return None
        issued = int(grant.get("issued_at") or 0)
        exp = issued + int(self._ctx.cfg.lifespans.refresh)
        if exp <= self._ctx.clock():
            return None
        if await self._revocations.is_revoked(grant["family"]):
            return None
        if await store.get("refresh-used", lookup) is not None:
            return None  # rotated: its successor is the live one
        if await store.get("session", grant["session_id"]) is None:
            return None  # the login has ended: the refresh grant would refuse it
        return {
            "active": True,
            "scope": " ".join(grant.get("scope") or ()),
            "client_id": grant["client_id"],
            "sub": grant.get("subject"),
            "aud": grant.get("resource"),
            "iss": self._ctx.issuer,
            "iat": issued,
            "exp": exp,
            "token_type": "refresh_token",
        }

    def _may_see(self, client: Client, issued_to: object) -> bool:
        """Static confidential clients (resource servers) see every access token; others only their own."""
        return (client.source == "static" and not client.public) or issued_to == client.client_id


def _current(claims: Mapping[str, Any], now: float) -> bool:
    """Within `nbf`..`exp` by this server's clock (it issued them: no skew), with `exp` present."""
    exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
        return False
    return isinstance(nbf, int | float) and not isinstance(nbf, bool) and nbf <= now
