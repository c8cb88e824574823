"""A login session's links to its upstreams: `UpstreamLinks` hands out the session's upstream tokens (to backends,
`--upstream-inject`) and keeps them fresh (to the refresh grant).

Tokens expiring within `EXPIRY_MARGIN` seconds are refreshed at the upstream first, one refresh at a time per session
and upstream in this process (the upstream may rotate its refresh token: two refreshes of one would end the login).
When the refreshed answer carries a new ID token from the upstream the user logged in with (the session's first),
its claims replace the session's (name, email, groups, roles: `identity.token_claims`), so the next access token
and the Cedar policies reading it see the user's current groups; an ID token naming another `sub` is a refusal
(OpenID Connect Core 1.0 section 12.2). An upstream that refuses the refresh (`invalid_grant` and the like) ends
the link: the session's tokens from it are dropped and the session remembers why, so the refresh grant tells the
user to log in again. An upstream that cannot be reached (`UPSTREAM_TRANSIENT`) changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from hivegate.authserver.context import ServerContext
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.identity import token_claims
from hivegate.authserver.upstream.base import UpstreamError, UpstreamProvider, UpstreamTokens
from hivegate.storage.base import Record

__all__ = ["EXPIRY_MARGIN", "UPSTREAM_TRANSIENT", "UpstreamLinks"]

logger = logging.getLogger("hivegate.authserver")

# refresh errors that say the upstream could not be reached (network, timeout, HTTP 5xx), not that the grant is bad
UPSTREAM_TRANSIENT = frozenset({"temporarily_unavailable", "server_error"})
EXPIRY_MARGIN = 30.0  # seconds before expiry an upstream token is refreshed
ENDED = "upstream_ended"  # session field: upstream name -> the error that ended its link


class UpstreamLinks:
    def __init__(self, ctx: ServerContext, upstreams: Sequence[UpstreamProvider]) -> None:
        self._ctx = ctx
        self._upstreams = {u.name: u for u in upstreams}
        self._first = upstreams[0].name if upstreams else ""
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()

    async def tokens(self, session_id: str, provider: str) -> UpstreamTokens | None:
        """The session's tokens from `provider`, refreshed first when (about to be) expired; None when there are
        none or they cannot be refreshed (no refresh token, or the upstream refused: the link is then ended).
        `UpstreamError` when the upstream cannot be reached (`UPSTREAM_TRANSIENT`): the login is still good."""
        session = await self._ctx.store.get("session", session_id)
        record = None if session is None else session["upstream_tokens"].get(provider)
        if record is None:
            return None
        tokens = UpstreamTokens.from_record(record)
        if not self._expired(tokens):
            return tokens
        lock = self._locks.setdefault((session_id, provider), asyncio.Lock())
        async with lock:
            return await self._refresh(session_id, provider)

    async def fresh_session(self, session_id: str, session: Record) -> Record:
        """For the refresh grant: `session` with its expired upstream tokens refreshed and its claims updated;
        `OAuthError` `invalid_grant` when an upstream link has ended (log in again), `temporarily_unavailable` when
        an upstream cannot be reached (the refresh token presented stays usable)."""
        expired = [p for p, r in session["upstream_tokens"].items() if self._expired(UpstreamTokens.from_record(r))]
        for provider in expired:
            try:
                await self.tokens(session_id, provider)
            except UpstreamError as exc:
                why = f"{provider} cannot be reached to renew the sign-in; try again later"
                raise OAuthError("temporarily_unavailable", why, status=503, retry_after=5) from exc
        if expired:
            session = await self._ctx.store.get("session", session_id) or {}
        ended: Mapping[str, Any] = session.get(ENDED) or {}
        if not session or ended:
            name = next(iter(ended), "the identity provider")
            raise OAuthError("invalid_grant", f"the sign-in at {name} has ended; log in again")
        return session

    def _expired(self, tokens: UpstreamTokens) -> bool:
        return tokens.expires_at is not None and tokens.expires_at - EXPIRY_MARGIN <= self._ctx.clock()

    async def _refresh(self, session_id: str, provider: str) -> UpstreamTokens | None:
        session = await self._ctx.store.get("session", session_id)  # again: another caller may have refreshed
        record = None if session is None else session["upstream_tokens"].get(provider)
        if session is None or record is None:
            return None
        tokens = UpstreamTokens.from_record(record)
        upstream = self._upstreams.get(provider)
        if not self._expired(tokens):
            return tokens
        if upstream is None or not tokens.refresh_token:
            return None
        try:
            fresh, identity = await upstream.refresh(tokens.refresh_token)
            if identity is not None and provider == session.get("identity_upstream", self._first):
                if identity.subject != session.get("subject", identity.subject):
                    raise UpstreamError("invalid_grant", "the refreshed ID token names another user")
                user = {"name": identity.name, "email": identity.email, "claims": dict(identity.claims)}
                session["claims"] = token_claims(user)
        except UpstreamError as exc:
            if exc.error in UPSTREAM_TRANSIENT:
                logger.warning("upstream %r refresh failed, upstream unavailable: %s", provider, exc)
                raise
            logger.info("upstream %r refresh refused: %s; the session's link to it ends", provider, exc.error)
            del session["upstream_tokens"][provider]
            session[ENDED] = {**session.get(ENDED, {}), provider: exc.error}
            await self._ctx.store.put("session", session_id, session, self._ctx.cfg.lifespans.refresh)
            return None
        session["upstream_tokens"][provider] = fresh.to_record()
        await self._ctx.store.put("session", session_id, session, self._ctx.cfg.lifespans.refresh)
        return fresh
