"""Revoking what the grants issued. `revoke_family` revokes a token family (every token issued from one login) when an
authorization code is replayed, a rotated refresh token is reused, or a client asks; `TokenRevocation` is RFC 7009 at
`/oauth/revoke`: a refresh token revokes its family, an access token of this server its family too, except an
exchanged one (RFC 8693), which is revoked alone. The revocations themselves are kept by `revocation.Revocations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hivegate.authserver.clients import Client
from hivegate.authserver.context import REFRESH_PREFIX, ServerContext
from hivegate.authserver.grants.token_exchange import TokenExchangeGrant
from hivegate.authserver.revocation import FAMILY_CLAIM, Revocations

__all__ = ["TokenRevocation", "revoke_family"]


async def revoke_family(revocations: Revocations, record: Mapping[str, Any], why: str) -> None:
    """Revoke the family of a `refresh` or `code-used` record (the latter named no client or subject before)."""
    client_id, subject = record.get("client_id"), record.get("subject")
    await revocations.revoke(record["family"], why, client_id=_text(client_id), subject=_text(subject))


class TokenRevocation:
    def __init__(self, ctx: ServerContext, *, revocations: Revocations, exchange: TokenExchangeGrant) -> None:
        self._ctx = ctx
        self._revocations = revocations
        self._exchange = exchange

    async def revoke(self, client: Client, token: str) -> None:
        """Revoke `token` if it was issued to `client` (authenticated); anything else is ignored."""
        lookup = self._ctx.hmac.check(REFRESH_PREFIX, token)
        if lookup is not None:
            await self._revoke_refresh(client, lookup)
            return
        claims = await self._exchange.own_claims(token)
        if claims is not None and claims.get("client_id") == client.client_id:
            await self._revoke_access(claims)

    async def _revoke_refresh(self, client: Client, lookup: str) -> None:
        grant = await self._ctx.store.get("refresh", lookup)
        if grant is None or grant["client_id"] != client.client_id:
            return
        await revoke_family(self._revocations, grant, "refresh token revoked by the client")
        await self._ctx.store.delete("refresh", lookup)

    async def _revoke_access(self, claims: Mapping[str, Any]) -> None:
        """Revoke an access token of this server, issued to the requesting client (`claims` verified).

        An exchanged token (`act`, RFC 8693) names the family of its subject's login, which belongs to the client
        that login was for, not to the exchanging client that holds it: revoking it revokes that token alone (its
        `jti`), never the login it was exchanged from (the subject's client revokes that with its own tokens)."""
        client_id, subject = _text(claims.get("client_id")), _text(claims.get("sub"))
        if "act" in claims:
            jti = claims.get("jti")
            if isinstance(jti, str) and jti:
                why = "exchanged access token revoked by the client"
                await self._revocations.revoke_token(jti, why, client_id=client_id, subject=subject)
            return
        family = claims.get(FAMILY_CLAIM)
        if isinstance(family, str):
            why = "access token revoked by the client"
            await self._revocations.revoke(family, why, client_id=client_id, subject=subject)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
