"""Minting the tokens of a login: `TokenIssuer.issue` signs an access token (a JWT of this server's keys, for the
login's resource, scopes and user claims, in the login's token family `tfam`) and, for a client allowed the
`refresh_token` grant, mints an opaque refresh token kept in store namespace `refresh`. The authorization code grant
ends in `issue`; the refresh grant, which decides its successor refresh token itself, in `access` and `keep_refresh`;
token exchange mints its own (`token_exchange`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hivegate.authserver.clients import Client
from hivegate.authserver.context import REFRESH_PREFIX, ServerContext
from hivegate.authserver.keys import OpaqueToken
from hivegate.authserver.pkce import random_id
from hivegate.authserver.revocation import FAMILY_CLAIM

__all__ = ["TokenIssuer"]


class TokenIssuer:
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    async def issue(self, client: Client, grant: Mapping[str, Any], family: str) -> dict[str, Any]:
        """The token response: an access token, and a new refresh token when the client may use the refresh grant."""
        response = self.access(client, grant, family)
        if "refresh_token" in client.grant_types:
            refresh = self._ctx.hmac.mint(REFRESH_PREFIX)
            await self.keep_refresh(refresh, client, grant, family)
            response["refresh_token"] = refresh.token
        return response

    def access(self, client: Client, grant: Mapping[str, Any], family: str) -> dict[str, Any]:
        """A token response with a new access token (and no refresh token)."""
        ctx = self._ctx
        now = int(ctx.clock())
        lifespan = int(ctx.cfg.lifespans.access)
        scope = " ".join(grant["scope"])
        claims: dict[str, Any] = {
            "iss": ctx.issuer,
            "sub": grant["subject"],
            "aud": grant["resource"],
            "exp": now + lifespan,
            "iat": now,
            "nbf": now,
            "jti": random_id(16),
            "client_id": client.client_id,
            "tsid": grant["session_id"],
            FAMILY_CLAIM: family,
            "scope": scope,
            "scp": list(grant["scope"]),
            **grant["claims"],
        }
        return {"access_token": ctx.keys.sign(claims), "token_type": "Bearer", "expires_in": lifespan, "scope": scope}

    async def keep_refresh(self, refresh: OpaqueToken, client: Client, grant: Mapping[str, Any], family: str) -> None:
        """Store what refresh token `refresh` may be exchanged for (keyed by its hash)."""
        ctx = self._ctx
        record = {
            "family": family,
            "client_id": client.client_id,
            "session_id": grant["session_id"],
            "subject": grant["subject"],
            "scope": list(grant["scope"]),
            "resource": grant["resource"],
            "claims": grant["claims"],
            "issued_at": int(ctx.clock()),
        }
        await ctx.store.put("refresh", refresh.lookup, record, ctx.cfg.lifespans.refresh)
