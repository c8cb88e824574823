"""Revoked token families as the per-request check sees them: at once in the revoking process, within `RECHECK`
from another one sharing the store, and the last answer when the store is down."""

from __future__ import annotations

import pytest

from hivegate.authserver.revocation import FAMILY_CLAIM, RECHECK, Revocations
from hivegate.authserver.storage.base import StorageError
from hivegate.authserver.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio


class Flaky(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.reads = 0

    async def get(self, namespace: str, key: str) -> dict[str, object] | None:  # type: ignore[override]
        self.reads += 1
        if self.down:
            raise StorageError("redis: connection refused")
        return await super().get(namespace, key)


async def test_a_revocation_by_another_replica_counts_within_the_recheck_time() -> None:
    store, now = Flaky(), [0.0]
    here = Revocations(store, ttl=3600, clock=lambda: now[0])
    there = Revocations(store, ttl=3600, clock=lambda: now[0])
    assert not await here.is_revoked("fam-1")
    await there.revoke("fam-1", "refresh token reused")
    assert await there.is_revoked("fam-1")  # where it was revoked: at once
    now[0] += RECHECK / 2
    assert not await here.is_revoked("fam-1")  # the remembered answer, no store read
    now[0] += RECHECK
    assert await here.is_revoked("fam-1")
    reads = store.reads
    now[0] += 10 * RECHECK
    assert await here.is_revoked("fam-1")  # "revoked" is final: never asked again
    assert store.reads == reads


async def test_the_last_answer_stands_while_the_store_is_down(caplog: pytest.LogCaptureFixture) -> None:
    store, now = Flaky(), [0.0]
    revocations = Revocations(store, ttl=3600, clock=lambda: now[0])
    await revocations.revoke("gone", "revoked by the client")
    assert not await revocations.is_revoked("kept")
    store.down = True
    now[0] += 2 * RECHECK
    assert await revocations.is_revoked("gone")
    assert not await revocations.is_revoked("kept")
    assert not await revocations.is_revoked("never-seen")
    assert not await revocations.is_revoked("never-seen-either")
    warnings = [r for r in caplog.records if "cannot check token revocation" in r.getMessage()]
    assert len(warnings) == 1  # once per outage


async def test_only_tokens_naming_a_family_can_be_revoked() -> None:
    revocations = Revocations(MemoryStore(), ttl=3600)
    await revocations.revoke("fam-1", "test")
    assert await revocations.claims_revoked({FAMILY_CLAIM: "fam-1", "sub": "alice"})
    assert not await revocations.claims_revoked({FAMILY_CLAIM: "fam-2"})
    assert not await revocations.claims_revoked({"sub": "alice"})  # e.g. issued before families were named
    assert not await revocations.claims_revoked({FAMILY_CLAIM: ["fam-1"]})
