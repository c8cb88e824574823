"""RedisStore against a real redis-server (started here; scripts/install-test-deps.sh installs it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest
from redis.asyncio import Redis
from storage_contract import NS, StoreContract, until_absent

from hivegate.storage import RedisStore, StorageError
from support.backend import closed_port
from support.redis_server import RedisServer, start_redis

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def redis_server(anyio_backend: str) -> AsyncIterator[RedisServer]:
    async with start_redis() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def store(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_server.url, key_prefix=prefix)
    yield store
    await store.aclose()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


class TestRedisStore(StoreContract):
    pass


async def test_record_layout_is_prefixed_json_with_a_millisecond_expiry(
    store: RedisStore, raw: Redis, prefix: str
) -> None:
    await store.put(NS, "abc", {"v": "ü"}, ttl=30)
    assert await raw.get(f"{prefix}{NS}:abc") == '{"v":"ü"}'.encode()
    assert 29_000 < await raw.pttl(f"{prefix}{NS}:abc") <= 30_000
    await store.put(NS, "tiny", {}, ttl=0.0001)  # rounds up to Redis's smallest expiry, 1 ms
    assert await raw.pttl(f"{prefix}{NS}:tiny") in (-2, 0, 1)
    await until_absent(store, NS, "tiny")
    assert await raw.keys(f"{prefix}*") == [f"{prefix}{NS}:abc".encode()]


async def test_two_replicas_see_each_others_records(redis_server: RedisServer, prefix: str) -> None:
    a, b = RedisStore(redis_server.url, key_prefix=prefix), RedisStore(redis_server.url, key_prefix=prefix)
    other = RedisStore(redis_server.url, key_prefix=f"other-{prefix}")
    try:
        await a.put(NS, "k", {"from": "a"}, ttl=60)
        assert await b.get(NS, "k") == {"from": "a"}
        assert await other.get(NS, "k") is None
        assert await b.take(NS, "k") == {"from": "a"}
        assert await a.take(NS, "k") is None
        for round_ in range(5):
            wins: list[str] = []

            async def add(name: str, store: RedisStore, key: str, wins: list[str]) -> None:
                if await store.add(NS, key, {"by": name}, ttl=60):
                    wins.append(name)

            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(add, f"a{i}", a, f"race{round_}", wins)
                    tg.start_soon(add, f"b{i}", b, f"race{round_}", wins)
            assert len(wins) == 1
            assert await a.get(NS, f"race{round_}") == await b.get(NS, f"race{round_}") == {"by": wins[0]}
    finally:
        for store in (a, b, other):
            await store.aclose()


async def test_a_dead_redis_is_a_prompt_storage_error() -> None:
    store = RedisStore(f"redis://127.0.0.1:{closed_port()}/0")  # nothing listens there
    operations: list[Callable[[], Awaitable[object]]] = [
        store.ping,
        lambda: store.get(NS, "k"),
        lambda: store.put(NS, "k", {}, ttl=60),
        lambda: store.add(NS, "k", {}, ttl=60),
        lambda: store.take(NS, "k"),
        lambda: store.delete(NS, "k"),
    ]
    try:
        for operation in operations:
            start = time.monotonic()
            with anyio.fail_after(5), pytest.raises(StorageError, match=r"^redis store failed: ConnectionError$"):
                await operation()
            assert time.monotonic() - start < 2
    finally:
        await store.aclose()


async def test_a_redis_that_stops_answering_is_a_storage_error_within_the_socket_timeout(
    redis_server: RedisServer, raw: Redis, prefix: str
) -> None:
    store = RedisStore(redis_server.url, key_prefix=prefix, socket_timeout=0.3)
    try:
        await store.ping()
        await raw.client_pause(1000, all=True)  # holds every other client's commands
        start = time.monotonic()
        with anyio.fail_after(5), pytest.raises(StorageError, match=r"^redis store failed: TimeoutError$"):
            await store.get(NS, "k")
        assert time.monotonic() - start < 1.2
    finally:
        await raw.client_unpause()
        await store.aclose()


async def test_a_password_in_the_url() -> None:
    async with start_redis(password="s3cr:et/pw") as server:
        port = server.port
        for url in (
            f"redis://:s3cr%3Aet%2Fpw@127.0.0.1:{port}/0",
            f"redis://default:s3cr%3Aet%2Fpw@127.0.0.1:{port}/0",
        ):
            store = RedisStore(url)
            try:
                await store.put(NS, "k", {"ok": True}, ttl=60)
                assert await store.get(NS, "k") == {"ok": True}
            finally:
                await store.aclose()
        for url in (f"redis://127.0.0.1:{port}/0", f"redis://:wrong@127.0.0.1:{port}/0"):
            store = RedisStore(url)
            try:
                with pytest.raises(StorageError) as caught:
                    await store.ping()
                assert "wrong" not in str(caught.value)
            finally:
                await store.aclose()


async def test_rediss_speaks_tls() -> None:
    async with start_redis(tls=True) as server:
        assert server.url.startswith("rediss://")
        assert server.ca_file is not None
        store = RedisStore(server.url, tls_ca_file=str(server.ca_file))
        try:
            await store.put(NS, "k", {"over": "tls"}, ttl=60)
            assert await store.take(NS, "k") == {"over": "tls"}
        finally:
            await store.aclose()
        untrusting = RedisStore(server.url)  # the system's CAs do not know the test CA
        try:
            with pytest.raises(StorageError):
                await untrusting.ping()
        finally:
            await untrusting.aclose()


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "memcached://x"])
def test_only_redis_urls(url: str) -> None:
    with pytest.raises(ValueError, match="redis://"):
        RedisStore(url)


async def test_more_concurrent_calls_than_connections_wait_their_turn(redis_server: RedisServer, prefix: str) -> None:
    store = RedisStore(redis_server.url, key_prefix=prefix, max_connections=3)
    try:
        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(store.put, NS, f"k{i}", {"i": i}, 60)
        for i in range(60):
            assert await store.get(NS, f"k{i}") == {"i": i}
    finally:
        await store.aclose()
