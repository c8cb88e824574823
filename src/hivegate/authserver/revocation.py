"""Revoked token families, and the per-request check that makes revocation reach access tokens.

Everything issued from one authorization code is a *family*: its access tokens (claim `tfam`), its refresh tokens
and the tokens exchanged from them. A family is revoked when its code is replayed, a rotated refresh token is
reused, or a client revokes one of its tokens (RFC 7009). Access tokens are JWTs checked without the store, so the
gateway also asks, per request, whether the token's family is revoked: a revocation made by this process counts at
once; one made by another replica sharing the store counts within `RECHECK` seconds (a "not revoked" answer is
kept that long; "revoked" is kept for good). When the store cannot be reached, the last answer stands (a family
never seen is taken as not revoked) and a warning is logged once per outage: the store's outage must not lock out
every caller whose token is otherwise valid.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from hivegate.authserver.storage.base import KeyValueStore, StorageError

__all__ = ["FAMILY_CLAIM", "RECHECK", "Revocations"]

logger = logging.getLogger("hivegate.authserver")

FAMILY_CLAIM: Final = "tfam"
RECHECK: Final = 5.0  # seconds a "not revoked" answer from the store is trusted
_REMEMBERED: Final = 10_000  # families whose answer is kept in memory
_KIND: Final = "family-revoked"


class Revocations:
    def __init__(self, store: KeyValueStore, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl  # how long a revocation is kept: as long as the family's refresh tokens live
        self._clock = clock
        self._known: OrderedDict[str, tuple[bool, float]] = OrderedDict()  # family → (revoked, when asked)
        self._outage = False

    async def revoke(self, family: str, why: str) -> None:
        logger.warning("authserver: revoking a token family: %s", why)
        self._remember(family, True)
        await self._store.put(_KIND, family, {"why": why}, self._ttl)

    async def is_revoked(self, family: str) -> bool:
        known = self._known.get(family)
        if known is not None and (known[0] or self._clock() - known[1] < RECHECK):
            return known[0]
        try:
            revoked = await self._store.get(_KIND, family) is not None
        except StorageError as exc:
            if not self._outage:
                self._outage = True
                logger.warning("authserver: cannot check token revocation (the last answers stand): %s", exc)
            return known[0] if known is not None else False
        if self._outage:
            self._outage = False
            logger.info("authserver: token revocation checks work again")
        self._remember(family, revoked)
        return revoked

    async def claims_revoked(self, claims: Mapping[str, Any]) -> bool:
        """Whether a token with these claims belongs to a revoked family (a token naming none never is)."""
        family = claims.get(FAMILY_CLAIM)
        return isinstance(family, str) and await self.is_revoked(family)

    def _remember(self, family: str, revoked: bool) -> None:
        self._known[family] = (revoked, self._clock())
        self._known.move_to_end(family)
        while len(self._known) > _REMEMBERED:
            self._known.popitem(last=False)
