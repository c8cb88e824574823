"""Sessions recorded for other replicas: what a replica can load, who may resume, expiry, and a failing store."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from hivegate.backends.shared_sessions import (
    ENDED_RECHECK,
    PROBE_INTERVAL,
    RECOVERY_GRACE,
    SessionStoreUnavailable,
    SharedSession,
    SharedSessions,
)
from hivegate.backends.shared_sessions import _key as _digest
from hivegate.storage.base import Record, StorageError
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

INIT = {"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}}, "clientInfo": {"name": "c", "version": "1"}}


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sessions' monotonic clock: a test moves it by changing `now[0]`."""
    clock = [1000.0]
    monkeypatch.setattr("hivegate.backends.shared_sessions.time.monotonic", lambda: clock[0])
    return clock


async def test_a_saved_session_loads_on_another_replica_sharing_the_store() -> None:
    store = MemoryStore()
    a, b = SharedSessions(store, ttl=60), SharedSessions(store, ttl=60)
    await a.save("sid-1", SharedSession("iss|alice", INIT, {"name": "c"}))
    found = await b.load("sid-1")
    assert found == SharedSession("iss|alice", INIT, {"name": "c"})
    assert await b.load("sid-2") is None


async def test_the_store_key_is_a_digest_not_the_session_id() -> None:
    store = MemoryStore()
    await SharedSessions(store, ttl=60).save("secret-session-id", SharedSession("o", INIT))
    assert await store.get("session", "secret-session-id") is None


async def test_delete_removes_the_record_for_every_replica() -> None:
    store = MemoryStore()
    a, b = SharedSessions(store, ttl=60), SharedSessions(store, ttl=60)
    await a.save("sid", SharedSession("o", INIT))
    await b.delete("sid")
    assert await a.load("sid") is None


async def test_a_session_ended_at_another_replica_is_dropped_and_never_written_back(now: list[float]) -> None:
    store = MemoryStore()
    a, b = SharedSessions(store, ttl=3600), SharedSessions(store, ttl=3600)
    record = SharedSession("o", INIT)
    await a.save("sid", record)
    assert await b.renew("sid", record)  # b resumed it and serves it
    await a.delete("sid")
    now[0] += ENDED_RECHECK / 2
    assert await b.renew("sid", record)  # not asked again yet
    now[0] += ENDED_RECHECK
    assert not await b.renew("sid", record)
    assert await a.load("sid") is None  # b did not write the record back
    now[0] += 3600 / 10
    assert not await b.renew("sid", record)  # ended for good, whenever asked


async def test_a_record_written_back_by_a_renewal_racing_the_delete_never_loads() -> None:
    store = MemoryStore()
    a, b = SharedSessions(store, ttl=60), SharedSessions(store, ttl=60)
    record = SharedSession("o", INIT)
    await a.delete("sid")
    await b.save("sid", record)  # the renewal's write landed after the DELETE
    assert await store.get("session", _digest("sid")) is not None
    assert await a.load("sid") is None


async def test_renew_asks_whether_the_session_ended_before_it_writes(now: list[float]) -> None:
    store = MemoryStore()
    a, b = SharedSessions(store, ttl=20), SharedSessions(store, ttl=20)  # a write due every 2 s, checks every 2 s
    record = SharedSession("o", INIT)
    await b.save("sid", record)
    now[0] += 1.0
    assert await b.renew("sid", record)
    await a.delete("sid")
    now[0] += 1.5  # a write is due (2.5 s since the save) but the periodic check is not (1.5 s): asked anyway
    assert not await b.renew("sid", record)
    assert await store.get("session", _digest("sid")) is None


async def test_renew_writes_at_most_every_tenth_of_the_ttl() -> None:
    writes: list[str] = []

    class Counting(MemoryStore):
        async def put(self, namespace: str, key: str, value: Record, ttl: float) -> None:
            writes.append(key)
            await super().put(namespace, key, value, ttl)

    shared = SharedSessions(Counting(), ttl=3600)
    record = SharedSession("o", INIT)
    await shared.save("sid", record)
    for _ in range(5):
        await shared.renew("sid", record)
    assert len(writes) == 1


class Switchable(MemoryStore):
    """A store that can be taken down (every call raises, as the Redis store does) and counts the calls it got."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    async def get(self, namespace: str, key: str) -> Record | None:
        self.calls += 1
        if self.down:
            raise StorageError("redis store failed: TimeoutError")
        return await super().get(namespace, key)

    async def put(self, namespace: str, key: str, value: Record, ttl: float) -> None:
        self.calls += 1
        if self.down:
            raise StorageError("redis store failed: TimeoutError")
        await super().put(namespace, key, value, ttl)


async def test_a_failing_store_never_fails_a_session_held_here_and_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Switchable()
    shared = SharedSessions(store, ttl=60)
    store.down = True
    record = SharedSession("o", INIT)
    await shared.save("sid", record)
    assert await shared.renew("sid", record)
    warnings = [r for r in caplog.records if "session store" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per request


async def test_a_session_another_replica_may_hold_is_unavailable_not_unknown_while_the_store_fails() -> None:
    store = Switchable()
    a, b = SharedSessions(store, ttl=60), SharedSessions(store, ttl=60)
    await a.save("sid", SharedSession("o", INIT))
    store.down = True
    with pytest.raises(SessionStoreUnavailable):
        await b.load("sid")  # not None: "no such session" would end a session that exists


async def test_a_session_opened_while_the_store_fails_is_recorded_at_its_next_use_once_it_is_back(
    now: list[float],
) -> None:
    store = Switchable()
    a, b = SharedSessions(store, ttl=3600), SharedSessions(store, ttl=3600)
    record = SharedSession("iss|alice", INIT)
    store.down = True
    await a.save("sid", record)  # initialize answered during the outage
    now[0] += 1.0
    assert await a.renew("sid", record)
    store.down = False
    now[0] += PROBE_INTERVAL
    assert await a.renew("sid", record)
    assert await b.load("sid") == record  # another replica can resume it now


async def test_while_the_store_fails_one_operation_per_interval_waits_on_it(now: list[float]) -> None:
    store = Switchable()
    shared = SharedSessions(store, ttl=60)
    store.down = True
    with pytest.raises(SessionStoreUnavailable):
        await shared.load("sid")
    for _ in range(10):  # everything within the interval fails at once, without asking the store
        with pytest.raises(SessionStoreUnavailable):
            await shared.load("sid")
    assert store.calls == 1
    now[0] += PROBE_INTERVAL
    with pytest.raises(SessionStoreUnavailable):
        await shared.load("sid")  # the probe
    assert store.calls == 2
    store.down = False
    now[0] += PROBE_INTERVAL
    with pytest.raises(SessionStoreUnavailable):
        await shared.load("sid")  # back (asked), but another replica may still be writing the record
    now[0] += RECOVERY_GRACE
    assert await shared.load("sid") is None
    assert store.calls == 4


async def test_records_the_store_missed_are_written_as_soon_as_it_answers_again(now: list[float]) -> None:
    store = Switchable()
    a, b = SharedSessions(store, ttl=3600), SharedSessions(store, ttl=3600)
    record = SharedSession("iss|alice", INIT)
    store.down = True
    await a.save("sid", record)  # opened during the outage, then not used again at a
    store.down = False
    now[0] += PROBE_INTERVAL
    with contextlib.suppress(SessionStoreUnavailable):
        await a.load("other")  # any use of the store at a notices it is back
    for _ in range(5):
        await asyncio.sleep(0)  # the write runs in the background
    assert await b.load("sid") == record  # the next request may go to any replica


async def test_just_after_the_store_is_back_a_missing_record_is_unavailable_not_unknown(now: list[float]) -> None:
    store = Switchable()
    b = SharedSessions(store, ttl=60)
    store.down = True
    with pytest.raises(SessionStoreUnavailable):
        await b.load("sid")
    store.down = False
    now[0] += PROBE_INTERVAL
    with pytest.raises(SessionStoreUnavailable):
        await b.load("sid")  # the replica that opened it may not have written it yet
    now[0] += RECOVERY_GRACE
    assert await b.load("sid") is None
