"""Minting the tokens of a login: `TokenIssuer.issue` signs an access token (a JWT of this server's keys, for the
login's resource, scopes and user claims, in the login's token family `tfam`) and, for a client allowed the
`refresh_token` grant, mints an opaque refresh token kept in store namespace `refresh`. The authorization code and
refresh grants both end here; token exchange mints its own (`token_exchange`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hivegate.authserver.clients import Client
from hivegate.authserver.context import REFRESH_PREFIX, ServerContext
from hivegate.authserver.pkce import random_id
from hivegate.authserver.revocation import FAMILY_CLAIM

__all__ = ["TokenIssuer"]


class TokenIssuer:
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    async def issue(self, client: Client, grant: Mapping[str, Any], family: str) -> dict[str, Any]:
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
        response: dict[str, Any] = {
            "access_token": ctx.keys.sign(claims),
            "token_type": "Bearer",
            "expires_in": lifespan,
            "scope": scope,
        }
        if "refresh_token" in client.grant_types:
            refresh = ctx.hmac.mint(REFRESH_PREFIX)
            record = {
                "family": family,
                "client_id": client.client_id,
                "session_id": grant["session_id"],
                "subject": grant["subject"],
                "scope": list(grant["scope"]),
                "resource": grant["resource"],
                "claims": grant["claims"],
                "issued_at": now,
            }
            await ctx.store.put("refresh", refresh.lookup, record, ctx.cfg.lifespans.refresh)
            response["refresh_token"] = refresh.token
        return response
