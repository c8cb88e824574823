"""The refresh token grant (RFC 6749 section 6): `RefreshGrant.refresh` rotates a refresh token into new tokens of
the same family, for the same or fewer scopes, while the login's session lasts. Expired upstream tokens of the
session are refreshed first, and the access token carries the user's claims as the upstream now states them
(`upstream_links`); an upstream that refuses ends the session (`invalid_grant`: log in again).

Refresh tokens are opaque and HMAC-protected (`keys.HMACKeys`); the store keys them by hash. They rotate, and the
chain never forks (OAuth 2.0 Security BCP, RFC 9700 section 4.14.2): the first use of a token marks it used (an
atomic `add` in namespace `refresh-used`) together with its one successor, sealed (`sealing`) for that mark's key.
Presenting it again within `REFRESH_GRACE` seconds (concurrent refreshes by one client) returns that same successor
with a new access token; presenting it later revokes the whole family, the successor included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hivegate.authserver.clients import Client
from hivegate.authserver.context import REFRESH_PREFIX, ServerContext
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.grants.issue import TokenIssuer
from hivegate.authserver.grants.revoke import revoke_family
from hivegate.authserver.messages import Params
from hivegate.authserver.revocation import Revocations
from hivegate.authserver.upstream_links import UpstreamLinks

__all__ = ["REFRESH_GRACE", "RefreshGrant"]

REFRESH_GRACE = 10.0  # seconds a rotated refresh token still gives its successor (concurrent refreshes)


class RefreshGrant:
    def __init__(
        self, ctx: ServerContext, *, issuer: TokenIssuer, revocations: Revocations, links: UpstreamLinks
    ) -> None:
        self._ctx = ctx
        self._issuer = issuer
        self._revocations = revocations
        self._links = links

    async def refresh(self, client: Client, form: Params) -> dict[str, Any]:
        lookup = self._ctx.hmac.check(REFRESH_PREFIX, form.one("refresh_token"))
        if lookup is None:
            raise OAuthError("invalid_grant", "the refresh token is invalid")
        grant = await self._ctx.store.get("refresh", lookup)
        if grant is None:
            raise OAuthError("invalid_grant", "the refresh token is invalid, expired or revoked")
        if grant["client_id"] != client.client_id:
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        if await self._ctx.store.get("family-revoked", grant["family"]) is not None:
            raise OAuthError("invalid_grant", "the refresh token has been revoked")
        scope = grant["scope"]
        if form.one("scope"):
            narrowed = list(dict.fromkeys(form.one("scope").split()))
            if not set(narrowed) <= set(scope):
                raise OAuthError("invalid_scope", "a refresh cannot add scopes")
            scope = narrowed
        resources = form.many("resource")
        if len(resources) > 1:
            raise OAuthError("invalid_target", "only one resource may be requested")
        if resources and resources[0] != grant["resource"]:
            raise OAuthError("invalid_target", "resource differs from the one authorized")
        session = await self._ctx.store.get("session", grant["session_id"])
        if session is None:
            raise OAuthError("invalid_grant", "the session of this refresh token has ended; log in again")
        session = await self._links.fresh_session(grant["session_id"], session)  # before the token is used up
        renewed = {**grant, "scope": scope, "claims": session["claims"]}
        successor = await self._rotate(client, lookup, grant, renewed)
        await self._ctx.store.put("session", grant["session_id"], session, self._ctx.cfg.lifespans.refresh)
        response = self._issuer.access(client, renewed, grant["family"])
        if successor is not None:
            response["refresh_token"] = successor
        return response

    async def _rotate(
        self, client: Client, lookup: str, grant: Mapping[str, Any], renewed: Mapping[str, Any]
    ) -> str | None:
        """Mark the presented token used and give its one successor (None for a client no longer allowed refresh
        tokens): a new one on first use, the same one again within the grace window; a use after the window revokes
        the family."""
        ctx = self._ctx
        now = ctx.clock()
        ttl = ctx.cfg.lifespans.refresh
        successor = ctx.hmac.mint(REFRESH_PREFIX) if "refresh_token" in client.grant_types else None
        mark: dict[str, Any] = {"at": now}
        if successor is not None:
            # stored before the mark, so whoever reads the mark can hand the successor out at once
            await self._issuer.keep_refresh(successor, client, renewed, grant["family"])
            mark["successor"] = ctx.sealer.seal("refresh-used", lookup, successor.token)
        if await ctx.store.add("refresh-used", lookup, mark, ttl):
            return None if successor is None else successor.token
        if successor is not None:
            await ctx.store.delete("refresh", successor.lookup)  # lost the race: never handed out
        used = await ctx.store.get("refresh-used", lookup)
        if used is None or now - float(used["at"]) > REFRESH_GRACE:
            await revoke_family(self._revocations, grant, "refresh token reused")
            raise OAuthError("invalid_grant", "the refresh token was already used; the session is revoked")
        if "successor" not in used:
            return None
        opened = ctx.sealer.open("refresh-used", lookup, used["successor"])
        if opened is None or not isinstance(opened[0], str):
            raise OAuthError("invalid_grant", "the refresh token was already used")
        return opened[0]
