"""Revoked token families as the per-request check sees them: at once in the revoking process, within `RECHECK`
from another one sharing the store, and the last answer when the store is down."""

from __future__ import annotations

import logging

import anyio
import pytest

from hivegate.authserver.revocation import FAMILY_CLAIM, RECHECK, Revocations
from hivegate.storage.base import StorageError
from hivegate.storage.memory import MemoryStore

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
    await there.revoke("fam-1", "refresh token reused", client_id="dyn-1", subject="alice")
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
    await revocations.revoke("gone", "revoked by the client", client_id="dyn-1", subject="alice")
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
    await revocations.revoke("fam-1", "test", client_id="dyn-1", subject="alice")
    assert await revocations.claims_revoked({FAMILY_CLAIM: "fam-1", "sub": "alice"})
    assert not await revocations.claims_revoked({FAMILY_CLAIM: "fam-2"})
    assert not await revocations.claims_revoked({"sub": "alice"})  # e.g. issued before families were named
    assert not await revocations.claims_revoked({FAMILY_CLAIM: ["fam-1"]})


class Paused(MemoryStore):
    """A store whose reads answer what was stored when they started, but finish only when `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = anyio.Event()
        self.started = anyio.Event()

    async def get(self, namespace: str, key: str) -> dict[str, object] | None:  # type: ignore[override]
        answer = await super().get(namespace, key)
        self.started.set()
        await self.release.wait()
        return answer


async def test_a_read_that_started_before_a_revocation_cannot_undo_it() -> None:
    store = Paused()
    revocations = Revocations(store, ttl=3600)
    answers: list[bool] = []

    async def check() -> None:
        answers.append(await revocations.is_revoked("fam-1"))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(check)
        await store.started.wait()  # the read has its answer ("not revoked") but has not finished
        await revocations.revoke("fam-1", "refresh token reused", client_id="dyn-1", subject="alice")
        store.release.set()
    assert answers == [True]  # that request was still under way: it sees the revocation too
    assert await revocations.is_revoked("fam-1")  # the late "not revoked" did not overwrite "revoked"


async def test_a_flood_of_other_families_cannot_evict_a_revocation() -> None:
    store = Flaky()
    revocations = Revocations(store, ttl=3600)
    await revocations.revoke("fam-1", "refresh token reused", client_id="dyn-1", subject="alice")
    for n in range(10_001):
        assert not await revocations.is_revoked(f"other-{n}")
    store.down = True  # so the store cannot remind it
    assert await revocations.is_revoked("fam-1")


async def test_a_dead_store_is_tried_once_per_recheck_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hivegate.authserver")
    store, now = Flaky(), [0.0]
    revocations = Revocations(store, ttl=3600, clock=lambda: now[0])
    assert not await revocations.is_revoked("kept")
    store.down = True
    now[0] += 2 * RECHECK
    reads = store.reads
    for n in range(50):
        assert not await revocations.is_revoked("kept")
        assert not await revocations.is_revoked(f"never-seen-{n}")
    assert store.reads == reads + 1  # one attempt, then the answers stand until RECHECK has passed
    now[0] += RECHECK
    assert not await revocations.is_revoked("kept")
    assert not await revocations.is_revoked("kept")
    assert store.reads == reads + 2
    store.down = False
    now[0] += RECHECK
    assert not await revocations.is_revoked("kept")
    assert store.reads == reads + 3
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot check token revocation" in m for m in messages) == 1
    assert sum("token revocation checks work again" in m for m in messages) == 1


async def test_a_revocation_is_kept_in_memory_as_long_as_an_access_token_of_the_family_lives() -> None:
    store, now = Flaky(), [0.0]
    revocations = Revocations(store, ttl=86_400, remember=3600, clock=lambda: now[0])
    await revocations.revoke("fam-1", "refresh token reused", client_id="dyn-1", subject="alice")
    now[0] += 3599
    reads = store.reads
    assert await revocations.is_revoked("fam-1")
    assert store.reads == reads  # from memory
    now[0] += 2  # every access token of the family has expired: memory lets go, the store still knows
    assert await revocations.is_revoked("fam-1")
    assert store.reads == reads + 1


async def test_revocation_logs_name_the_client_and_the_subject(caplog: pytest.LogCaptureFixture) -> None:
    revocations = Revocations(MemoryStore(), ttl=3600)
    await revocations.revoke("fam-1", "refresh token reused", client_id="dyn-1", subject="00u-alice")
    await revocations.revoke_token("jti-1", "revoked by the client", client_id="sts-1", subject="00u-bob")
    family, token = (r.getMessage() for r in caplog.records)
    assert all(part in family for part in ("'dyn-1'", "'00u-alice'", "refresh token reused"))
    assert all(part in token for part in ("'sts-1'", "'00u-bob'"))
    assert "fam-1" not in family
    assert "jti-1" not in token


async def test_an_exchanged_token_can_be_revoked_alone() -> None:
    revocations = Revocations(MemoryStore(), ttl=86_400, remember=3600)
    await revocations.revoke_token("jti-1", "revoked by the client", client_id="sts-1", subject="alice")
    exchanged = {FAMILY_CLAIM: "fam-1", "jti": "jti-1", "act": {"sub": "sts-1"}, "sub": "alice"}
    assert await revocations.claims_revoked(exchanged)
    assert not await revocations.claims_revoked({**exchanged, "jti": "jti-2"})  # another exchanged token
    assert not await revocations.claims_revoked({FAMILY_CLAIM: "fam-1", "jti": "jti-1"})  # not exchanged: by family
    assert not await revocations.is_revoked("fam-1")  # the subject's login is untouched
