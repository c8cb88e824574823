"""The authorization code grant (RFC 6749 section 4.1.3, with PKCE, RFC 7636): `AuthorizationCodeGrant.redeem` turns
the code a login ended with (`flow`) into the first tokens of a new token family.

Codes are opaque and HMAC-protected (`keys.HMACKeys`); the store keys them by hash. A code is redeemed once; a second
redemption revokes everything the first one issued (the code is remembered in namespace `code-used` as long as a
refresh token of its family can live).
"""

from __future__ import annotations

from typing import Any

from hivegate.authserver.clients import Client
from hivegate.authserver.context import CODE_PREFIX, ServerContext
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.grants.issue import TokenIssuer
from hivegate.authserver.grants.revoke import revoke_family
from hivegate.authserver.messages import Params
from hivegate.authserver.pkce import random_id, verifier_matches
from hivegate.authserver.revocation import Revocations

__all__ = ["AuthorizationCodeGrant"]


class AuthorizationCodeGrant:
    def __init__(self, ctx: ServerContext, *, issuer: TokenIssuer, revocations: Revocations) -> None:
        self._ctx = ctx
        self._issuer = issuer
        self._revocations = revocations

    async def redeem(self, client: Client, form: Params) -> dict[str, Any]:
        lookup = self._ctx.hmac.check(CODE_PREFIX, form.one("code"))
        if lookup is None:
            raise OAuthError("invalid_grant", "the authorization code is invalid")
        grant = await self._ctx.store.get("code", lookup)
        if grant is None:
            used = await self._ctx.store.get("code-used", lookup)
            if used is not None:
                await revoke_family(self._revocations, used, "authorization code replayed")
            raise OAuthError("invalid_grant", "the authorization code is invalid, expired or already used")
        if grant["client_id"] != client.client_id:
            raise OAuthError("invalid_grant", "the authorization code was issued to another client")
        if grant["expires_at"] < self._ctx.clock():
            raise OAuthError("invalid_grant", "the authorization code has expired")
        if (grant["redirect_given"] or "redirect_uri" in form) and form.one("redirect_uri") != grant["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        verifier = form.one("code_verifier")
        if not verifier:
            raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
        if not verifier_matches(verifier, grant["code_challenge"]):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        resources = form.many("resource")
        if len(resources) > 1:
            raise OAuthError("invalid_target", "only one resource may be requested")
        if resources and resources[0] != grant["resource"]:
            raise OAuthError("invalid_target", "resource differs from the one authorized")
        family = random_id(18)
        redeemed = {"family": family, "client_id": client.client_id, "subject": grant["subject"]}
        if not await self._ctx.store.add("code-used", lookup, redeemed, self._ctx.cfg.lifespans.refresh):
            replayed = await self._ctx.store.get("code-used", lookup)
            if replayed is not None:
                await revoke_family(self._revocations, replayed, "authorization code replayed")
            raise OAuthError("invalid_grant", "the authorization code is invalid, expired or already used")
        await self._ctx.store.delete("code", lookup)
        return await self._issuer.issue(client, grant, family)
