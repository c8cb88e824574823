"""Revoked token families, and the per-request check that makes revocation reach access tokens.

Everything issued from one authorization code is a *family*: its access tokens (claim `tfam`), its refresh tokens
and the tokens exchanged from them. A family is revoked when its code is replayed, a rotated refresh token is
reused, or a client revokes one of its tokens (RFC 7009). Access tokens are JWTs checked without the store, so the
gateway also asks, per request, whether the token's family is revoked: a revocation made by this process counts at
once; one made by another replica sharing the store counts within `RECHECK` seconds.

"Not revoked" answers are kept `RECHECK` seconds in a bounded LRU. "Revoked" answers are kept apart, outside the
LRU, for as long as an access token of the family can still be valid (`remember`: the longest access-token
lifespan; nothing new is issued in a revoked family): a flood of other families cannot evict them, and a store read
that started before a revocation and finishes after it cannot turn them back into "not revoked".

One exchanged token (claim `act`, RFC 8693) can also be revoked alone, by its `jti`, without its subject's family.

When the store cannot be reached, the last answer stands (a family never seen is taken as not revoked), the store
is tried again once per `RECHECK` (not on every request), and a warning is logged once per outage: the store's
outage must not lock out every caller whose token is otherwise valid.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from hivegate.storage.base import KeyValueStore, StorageError

__all__ = ["FAMILY_CLAIM", "RECHECK", "Revocations"]

logger = logging.getLogger("hivegate.authserver")

FAMILY_CLAIM: Final = "tfam"
RECHECK: Final = 5.0  # seconds a "not revoked" answer from the store is trusted (and a dead store left alone)
_REMEMBERED: Final = 10_000  # "not revoked" answers kept in memory
_FAMILY: Final = "family-revoked"  # store namespace: revoked families
_TOKEN: Final = "token-revoked"  # store namespace: single exchanged tokens revoked by jti

_Key = tuple[str, str]  # (store namespace, family or jti)


class Revocations:
    def __init__(
        self,
        store: KeyValueStore,
        *,
        ttl: float,
        remember: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl  # how long the store keeps a family's revocation: as long as any of its tokens lives
        self._remember = ttl if remember is None else remember  # the longest access-token lifespan
        self._clock = clock
        self._revoked: dict[_Key, float] = {}  # → until when; insertion order is expiry order (`remember` fixed)
        self._clear: OrderedDict[_Key, float] = OrderedDict()  # → when the store said "not revoked" (LRU)
        self._retry_at: float | None = None  # while the store is down: when to try it again

    async def revoke(self, family: str, why: str, *, client_id: str | None, subject: str | None) -> None:
        """Revoke a whole family: every token issued from one login, to `client_id` for `subject`."""
        logger.warning("authserver: revoking the token family of client %r for subject %r: %s",
                       client_id, subject, why)  # fmt: skip
        await self._revoke((_FAMILY, family), why, self._ttl)

    async def revoke_token(self, jti: str, why: str, *, client_id: str | None, subject: str | None) -> None:
        """Revoke one exchanged access token (its `jti`) and nothing else."""
        logger.warning("authserver: revoking one exchanged access token of client %r for subject %r: %s",
                       client_id, subject, why)  # fmt: skip
        await self._revoke((_TOKEN, jti), why, self._remember)

    async def is_revoked(self, family: str) -> bool:
        return await self._check((_FAMILY, family))

    async def claims_revoked(self, claims: Mapping[str, Any]) -> bool:
        """Whether a token with these claims belongs to a revoked family (a token naming none never does) or is an
        exchanged token revoked on its own."""
        family = claims.get(FAMILY_CLAIM)
        if isinstance(family, str) and await self._check((_FAMILY, family)):
            return True
        jti = claims.get("jti")
        return "act" in claims and isinstance(jti, str) and await self._check((_TOKEN, jti))

    async def _revoke(self, key: _Key, why: str, ttl: float) -> None:
        self._mark_revoked(key)
        await self._store.put(key[0], key[1], {"why": why}, ttl)

    async def _check(self, key: _Key) -> bool:
        now = self._clock()
        if self._known_revoked(key, now):
            return True
        cleared = self._clear.get(key)
        if cleared is not None and now - cleared < RECHECK:
            return False
        if self._retry_at is not None:
            if now < self._retry_at:
                return False  # the store is down: the last answer stands, not asked again before `_retry_at`
            self._retry_at = now + RECHECK  # this request tries the store; the others meanwhile do not
        try:
            revoked = await self._store.get(key[0], key[1]) is not None
        except StorageError as exc:
            self._store_down(exc, self._clock())  # from when it failed: a read may take its time to fail
            return self._known_revoked(key, self._clock())  # revoked here while the read was failing
        self._store_up()
        if revoked:
            self._mark_revoked(key)
            return True
        if self._known_revoked(key, self._clock()):
            return True  # revoked here while the read was under way: its late "not revoked" is stale
        self._clear[key] = now  # when the read started: the answer is at least that old
        self._clear.move_to_end(key)
        while len(self._clear) > _REMEMBERED:
            self._clear.popitem(last=False)
        return False

    def _known_revoked(self, key: _Key, now: float) -> bool:
        while self._revoked:
            oldest, until = next(iter(self._revoked.items()))
            if until > now:
                break
            del self._revoked[oldest]  # no access token of it can still be valid; the store still knows
        return key in self._revoked

    def _mark_revoked(self, key: _Key) -> None:
        self._revoked.pop(key, None)  # re-inserted last: the order stays the order of expiry
        self._revoked[key] = self._clock() + self._remember
        self._clear.pop(key, None)

    def _store_down(self, exc: StorageError, now: float) -> None:
        if self._retry_at is None:
            logger.warning("authserver: cannot check token revocation (the last answers stand): %s", exc)
        self._retry_at = now + RECHECK

    def _store_up(self) -> None:
        if self._retry_at is not None:
            self._retry_at = None
            logger.info("authserver: token revocation checks work again")
