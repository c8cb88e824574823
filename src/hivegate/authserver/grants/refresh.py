"""The refresh token grant (RFC 6749 section 6): `RefreshGrant.refresh` rotates a refresh token into new tokens of
the same family, for the same or fewer scopes, while the login's session lasts.

Refresh tokens are opaque and HMAC-protected (`keys.HMACKeys`); the store keys them by hash. They rotate: presenting
a rotated one again revokes its whole family, except within `REFRESH_GRACE` seconds (concurrent refreshes by one
client both succeed instead of logging the user out).
"""

from __future__ import annotations

from typing import Any

from hivegate.authserver.clients import Client
from hivegate.authserver.context import REFRESH_PREFIX, ServerContext
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.grants.issue import TokenIssuer
from hivegate.authserver.grants.revoke import revoke_family
from hivegate.authserver.messages import Params
from hivegate.authserver.revocation import Revocations

__all__ = ["REFRESH_GRACE", "RefreshGrant"]

REFRESH_GRACE = 10.0  # seconds a rotated refresh token is still honoured (concurrent refreshes)


class RefreshGrant:
    def __init__(self, ctx: ServerContext, *, issuer: TokenIssuer, revocations: Revocations) -> None:
        self._ctx = ctx
        self._issuer = issuer
        self._revocations = revocations

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
        now = self._ctx.clock()
        if not await self._ctx.store.add("refresh-used", lookup, {"at": now}, self._ctx.cfg.lifespans.refresh):
            used = await self._ctx.store.get("refresh-used", lookup)
            if used is None or now - float(used["at"]) > REFRESH_GRACE:
                await revoke_family(self._revocations, grant, "refresh token reused")
                raise OAuthError("invalid_grant", "the refresh token was already used; the session is revoked")
        session = await self._ctx.store.get("session", grant["session_id"])
        if session is None:
            raise OAuthError("invalid_grant", "the session of this refresh token has ended")
        await self._ctx.store.put("session", grant["session_id"], session, self._ctx.cfg.lifespans.refresh)
        return await self._issuer.issue(client, {**grant, "scope": scope, "claims": session["claims"]}, grant["family"])
