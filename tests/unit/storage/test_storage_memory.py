from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from storage_contract import NS, StoreContract, until_absent

from hivegate.storage import MemoryStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    store = MemoryStore()
    yield store
    await store.aclose()


class TestMemoryStore(StoreContract):
    pass


async def test_expired_records_are_swept_on_a_later_write() -> None:
    store = MemoryStore(purge_interval=0)
    for i in range(100):
        await store.put(NS, f"k{i}", {"i": i}, ttl=0.05)
    await until_absent(store, NS, "k99")  # the last written: all have expired
    await store.put(NS, "live", {}, ttl=60)
    assert len(store) == 1


async def test_writes_alone_trigger_a_sweep_before_the_interval() -> None:
    store = MemoryStore(purge_interval=3600)
    for i in range(1024):
        await store.put(NS, f"old{i}", {}, ttl=0.01)
    await until_absent(store, NS, "old1023")
    for i in range(1100):
        await store.put(NS, f"new{i}", {}, ttl=60)
    assert len(store) == 1100  # the expired ones went in the sweep at the 1024th write
    assert store.purge_expired() == 0


async def test_purge_expired_counts_what_it_dropped() -> None:
    store = MemoryStore()
    await store.put(NS, "a", {}, ttl=0.01)
    await store.put("other", "b", {}, ttl=0.01)
    await store.put(NS, "c", {}, ttl=60)
    await until_absent(store, "other", "b")  # reading drops "b" itself
    assert store.purge_expired() == 1
    assert len(store) == 1
