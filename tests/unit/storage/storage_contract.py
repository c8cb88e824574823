"""The one contract every `KeyValueStore` keeps. A test module subclasses `StoreContract` and provides a fixture
`store` that yields a fresh, empty store (and closes it after)."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

from hivegate.storage import KeyValueStore, Record, StorageError

NS = "codes"
OTHER_NS = "refresh"


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    with anyio.fail_after(timeout):
        while not await condition():
            await anyio.sleep(0.01)


async def until_absent(store: KeyValueStore, namespace: str, key: str) -> None:
    async def absent() -> bool:
        return await store.get(namespace, key) is None

    await eventually(absent)


@pytest.mark.anyio
class StoreContract:
    async def test_absent_key_is_none(self, store: KeyValueStore) -> None:
        assert await store.get(NS, "missing") is None

    async def test_put_then_get_then_replace(self, store: KeyValueStore) -> None:
        await store.put(NS, "k", {"n": 1}, ttl=60)
        assert await store.get(NS, "k") == {"n": 1}
        await store.put(NS, "k", {"n": 2, "more": True}, ttl=60)
        assert await store.get(NS, "k") == {"n": 2, "more": True}

    async def test_namespaces_are_separate(self, store: KeyValueStore) -> None:
        await store.put(NS, "k", {"in": NS}, ttl=60)
        assert await store.get(OTHER_NS, "k") is None
        await store.put(OTHER_NS, "k", {"in": OTHER_NS}, ttl=60)
        assert await store.take(OTHER_NS, "k") == {"in": OTHER_NS}
        assert await store.add(OTHER_NS, "k", {"again": 1}, ttl=60)
        await store.delete(OTHER_NS, "k")
        assert await store.get(NS, "k") == {"in": NS}

    async def test_keys_are_exact(self, store: KeyValueStore) -> None:
        keys = ["a", "a:b", "A", "a ", "ключ-🔑", "x" * 200, "%", "_", "*"]
        for i, key in enumerate(keys):
            await store.put(NS, key, {"i": i}, ttl=60)
        for i, key in enumerate(keys):
            assert await store.get(NS, key) == {"i": i}
        assert await store.get(NS, "a:") is None

    async def test_values_round_trip(self, store: KeyValueStore) -> None:
        value: Record = {
            "client_id": "cli-1",
            "scopes": ["openid", "mcp:tools"],
            "nested": {"deep": {"deeper": [1, 2.5, -3, None, True, False, {"k": "v"}]}},
            "unicode": 'Grüße, 東京, emoji 🐝, quote " backslash \\ nul-less',
            "big": 2**63 - 1,
            "small": -(2**63),
            "float": 0.1,
            "empty": {},
            "empty_list": [],
            "null": None,
        }
        await store.put(NS, "v", value, ttl=60)
        assert await store.get(NS, "v") == value
        assert await store.take(NS, "v") == value
        assert await store.add(NS, "e", {}, ttl=60)
        assert await store.get(NS, "e") == {}

    async def test_the_store_keeps_its_own_copy(self, store: KeyValueStore) -> None:
        value: Record = {"list": [1], "inner": {"a": 1}}
        await store.put(NS, "k", value, ttl=60)
        value["list"].append(2)
        value["inner"]["a"] = 2
        got = await store.get(NS, "k")
        assert got == {"list": [1], "inner": {"a": 1}}
        assert got is not None
        got["list"].append(3)
        assert await store.get(NS, "k") == {"list": [1], "inner": {"a": 1}}

    async def test_record_expires_after_ttl(self, store: KeyValueStore) -> None:
        start = time.monotonic()
        await store.put(NS, "k", {"v": 1}, ttl=0.2)
        got = await store.get(NS, "k")
        if time.monotonic() - start < 0.2:  # a stalled machine may legitimately see it expired already
            assert got == {"v": 1}
        await until_absent(store, NS, "k")
        assert await store.take(NS, "k") is None

    async def test_a_tiny_ttl_is_valid_and_expires(self, store: KeyValueStore) -> None:
        await store.put(NS, "k", {"v": 1}, ttl=0.0001)
        await until_absent(store, NS, "k")

    async def test_put_replaces_the_ttl(self, store: KeyValueStore) -> None:
        await store.put(NS, "shortened", {"v": 1}, ttl=60)
        await store.put(NS, "shortened", {"v": 2}, ttl=0.05)
        await store.put(NS, "lengthened", {"v": 1}, ttl=0.05)
        await store.put(NS, "lengthened", {"v": 2}, ttl=60)
        await until_absent(store, NS, "shortened")
        assert await store.get(NS, "lengthened") == {"v": 2}

    async def test_add_only_if_absent(self, store: KeyValueStore) -> None:
        assert await store.add(NS, "k", {"first": True}, ttl=60) is True
        assert await store.add(NS, "k", {"second": True}, ttl=60) is False
        assert await store.get(NS, "k") == {"first": True}

    async def test_add_succeeds_again_after_expiry(self, store: KeyValueStore) -> None:
        start = time.monotonic()
        assert await store.add(NS, "k", {"n": 1}, ttl=0.1) is True
        second = await store.add(NS, "k", {"n": 2}, ttl=60)
        if time.monotonic() - start < 0.1:
            assert second is False

        async def added() -> bool:
            return await store.add(NS, "k", {"n": 3}, ttl=60)

        await eventually(added)
        assert await store.get(NS, "k") == {"n": 3}

    async def test_add_succeeds_after_take_and_delete(self, store: KeyValueStore) -> None:
        assert await store.add(NS, "k", {"n": 1}, ttl=60)
        await store.take(NS, "k")
        assert await store.add(NS, "k", {"n": 2}, ttl=60)
        await store.delete(NS, "k")
        assert await store.add(NS, "k", {"n": 3}, ttl=60)
        assert await store.get(NS, "k") == {"n": 3}

    async def test_take_returns_the_record_once(self, store: KeyValueStore) -> None:
        await store.put(NS, "k", {"login": "pending"}, ttl=60)
        assert await store.take(NS, "k") == {"login": "pending"}
        assert await store.take(NS, "k") is None
        assert await store.get(NS, "k") is None
        assert await store.take(NS, "never") is None

    async def test_take_of_an_expired_record_is_none(self, store: KeyValueStore) -> None:
        await store.put(NS, "k", {"v": 1}, ttl=0.05)
        await until_absent(store, NS, "k")
        assert await store.take(NS, "k") is None

    async def test_twenty_concurrent_takers_one_gets_it(self, store: KeyValueStore) -> None:
        for round_ in range(3):
            await store.put(NS, f"k{round_}", {"round": round_}, ttl=60)
            results: list[Record | None] = []

            async def take(key: str, results: list[Record | None]) -> None:
                results.append(await store.take(NS, key))

            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(take, f"k{round_}", results)
            assert len(results) == 20
            assert [r for r in results if r is not None] == [{"round": round_}]

    async def test_twenty_concurrent_adders_one_wins(self, store: KeyValueStore) -> None:
        for round_ in range(3):
            wins: list[int] = []

            async def add(i: int, key: str, wins: list[int]) -> None:
                if await store.add(NS, key, {"by": i}, ttl=60):
                    wins.append(i)

            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(add, i, f"k{round_}", wins)
            assert len(wins) == 1
            assert await store.get(NS, f"k{round_}") == {"by": wins[0]}

    async def test_delete(self, store: KeyValueStore) -> None:
        await store.put(NS, "k", {"v": 1}, ttl=60)
        await store.put(NS, "other", {"v": 2}, ttl=60)
        await store.delete(NS, "k")
        assert await store.get(NS, "k") is None
        await store.delete(NS, "k")  # absent: no error
        await store.delete(NS, "never")
        assert await store.get(NS, "other") == {"v": 2}

    async def test_ping(self, store: KeyValueStore) -> None:
        await store.ping()

    @pytest.mark.parametrize("ttl", [0, -1, math.nan, -math.inf])
    async def test_a_ttl_must_be_positive(self, store: KeyValueStore, ttl: float) -> None:
        with pytest.raises(ValueError, match="ttl"):
            await store.put(NS, "k", {}, ttl=ttl)
        with pytest.raises(ValueError, match="ttl"):
            await store.add(NS, "k", {}, ttl=ttl)
        assert await store.get(NS, "k") is None

    @pytest.mark.parametrize("namespace", ["", "a:b"])
    async def test_a_namespace_is_a_plain_name(self, store: KeyValueStore, namespace: str) -> None:
        with pytest.raises(ValueError, match="namespace"):
            await store.get(namespace, "k")
        with pytest.raises(ValueError, match="namespace"):
            await store.put(namespace, "k", {}, ttl=60)

    async def test_a_record_is_a_json_object(self, store: KeyValueStore) -> None:
        with pytest.raises(TypeError):
            await store.put(NS, "k", ["not", "a", "dict"], ttl=60)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await store.put(NS, "k", {"a set": {1, 2}}, ttl=60)
        assert await store.get(NS, "k") is None

    async def test_every_operation_fails_after_aclose(self, store: KeyValueStore) -> None:
        await store.put(NS, "k", {"v": 1}, ttl=60)
        await store.aclose()
        await store.aclose()  # twice is fine
        operations: list[Callable[[], Awaitable[object]]] = [
            store.ping,
            lambda: store.get(NS, "k"),
            lambda: store.put(NS, "k", {}, ttl=60),
            lambda: store.add(NS, "j", {}, ttl=60),
            lambda: store.take(NS, "k"),
            lambda: store.delete(NS, "k"),
        ]
        for operation in operations:
            with pytest.raises(StorageError, match="closed"):
                await operation()
