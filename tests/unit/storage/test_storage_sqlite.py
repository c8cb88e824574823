from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from storage_contract import NS, StoreContract, until_absent

from hivegate.storage import SQLiteStore, StorageError
from hivegate.storage import sqlite as sqlite_module

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "auth.db")
    yield store
    await store.aclose()


class TestSQLiteStore(StoreContract):
    pass


class TestSQLiteStoreWithoutReturning(StoreContract):
    """SQLite older than 3.35 has no DELETE ... RETURNING: `take` is a BEGIN IMMEDIATE transaction there."""

    @pytest.fixture
    async def store(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SQLiteStore]:
        monkeypatch.setattr(sqlite_module, "_RETURNING", False)
        store = SQLiteStore(tmp_path / "auth.db")
        yield store
        await store.aclose()


def rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT ns, key FROM kv ORDER BY ns, key").fetchall()


async def test_records_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    first = SQLiteStore(path)
    await first.put(NS, "k", {"token": "family-1", "n": [1, 2]}, ttl=60)
    await first.add(NS, "used", {}, ttl=60)
    await first.aclose()
    second = SQLiteStore(path)
    try:
        assert await second.get(NS, "k") == {"token": "family-1", "n": [1, 2]}
        assert await second.add(NS, "used", {}, ttl=60) is False
    finally:
        await second.aclose()


async def test_file_and_directory_are_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nested" / "auth.db"
    store = SQLiteStore(path)
    try:
        await store.put(NS, "k", {}, ttl=60)
        for file in path.parent.iterdir():  # the database, and its -wal and -shm files
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
        assert {file.name for file in path.parent.iterdir()} >= {"auth.db", "auth.db-wal"}
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        await store.aclose()


async def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    store = SQLiteStore(path)
    await store.ping()
    await store.aclose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_expired_rows_are_deleted_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    store = SQLiteStore(path, purge_interval=0)
    try:
        for i in range(20):
            await store.put(NS, f"k{i}", {"i": i}, ttl=0.05)
        await until_absent(store, NS, "k19")
        await store.put(NS, "live", {}, ttl=60)
        assert rows(path) == [(NS, "live")]
    finally:
        await store.aclose()


async def test_a_sweep_also_runs_every_n_writes(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    store = SQLiteStore(path, purge_interval=3600, purge_every=10)
    try:
        for i in range(5):
            await store.put(NS, f"old{i}", {}, ttl=0.01)
        await until_absent(store, NS, "old4")
        for i in range(5):
            await store.put(NS, f"new{i}", {}, ttl=60)  # the 10th write since opening sweeps
        assert [key for _, key in rows(path)] == [f"new{i}" for i in range(5)]
    finally:
        await store.aclose()


async def test_expired_rows_are_deleted_on_opening(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    store = SQLiteStore(path, purge_interval=3600)
    await store.put(NS, "old", {}, ttl=0.01)
    await store.put(NS, "live", {}, ttl=60)
    await until_absent(store, NS, "old")
    await store.aclose()
    reopened = SQLiteStore(path)
    await reopened.ping()
    await reopened.aclose()
    assert rows(path) == [(NS, "live")]


async def test_two_stores_on_one_file_share_records_and_race_add(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    a, b = SQLiteStore(path), SQLiteStore(path)
    try:
        await a.put(NS, "k", {"from": "a"}, ttl=60)
        assert await b.take(NS, "k") == {"from": "a"}
        assert await a.get(NS, "k") is None
        for round_ in range(5):
            wins: list[str] = []

            async def add(name: str, store: SQLiteStore, key: str, wins: list[str]) -> None:
                if await store.add(NS, key, {"by": name}, ttl=60):
                    wins.append(name)

            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(add, f"a{i}", a, f"race{round_}", wins)
                    tg.start_soon(add, f"b{i}", b, f"race{round_}", wins)
            assert len(wins) == 1
            assert await b.get(NS, f"race{round_}") == {"by": wins[0]}
    finally:
        await a.aclose()
        await b.aclose()


RACER = """
import asyncio, json, sys
from hivegate.storage import SQLiteStore

async def main(path: str, keys: int) -> None:
    store = SQLiteStore(path)
    await store.ping()
    print("ready", flush=True)
    sys.stdin.readline()
    won = [i for i in range(keys) if await store.add("race", f"k{i}", {"pid": 1}, ttl=60)]
    await store.aclose()
    print(json.dumps(won), flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_processes_sharing_the_file_never_both_win_add(tmp_path: Path) -> None:
    path, processes, keys = tmp_path / "auth.db", 4, 200
    await SQLiteStore(path).aclose()  # nothing opened yet: closing is fine
    racers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            RACER,
            str(path),
            str(keys),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    try:
        with anyio.fail_after(60):
            for racer in racers:
                assert racer.stdout is not None
                assert await racer.stdout.readline() == b"ready\n"
            for racer in racers:
                assert racer.stdin is not None
                racer.stdin.write(b"go\n")
                await racer.stdin.drain()
            results = [json.loads(await racer.stdout.readline()) for racer in racers if racer.stdout is not None]
            assert [await racer.wait() for racer in racers] == [0] * processes
    finally:
        for racer in racers:
            if racer.returncode is None:
                racer.kill()
                await racer.wait()
    wins = Counter(key for won in results for key in won)
    assert sorted(wins) == list(range(keys))
    assert set(wins.values()) == {1}


async def test_an_unusable_path_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    store = SQLiteStore(tmp_path / "a-file" / "auth.db")
    with anyio.fail_after(5), pytest.raises(StorageError, match=r"^sqlite store cannot open its file: "):
        await store.ping()
    await store.aclose()


async def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    path.write_bytes(b"this is not a database, it is secret-value " * 200)
    store = SQLiteStore(path)
    with pytest.raises(StorageError) as caught:
        await store.get(NS, "k")
    assert str(caught.value) == "sqlite store failed: SQLITE_NOTADB"
    await store.aclose()


async def test_a_lock_held_too_long_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    store = SQLiteStore(path, busy_timeout=0.2)
    await store.ping()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with anyio.fail_after(5), pytest.raises(StorageError, match="SQLITE_BUSY"):
            await store.put(NS, "k", {}, ttl=60)
        holder.execute("ROLLBACK")
        await store.put(NS, "k", {"after": 1}, ttl=60)  # usable again once the lock is gone
        assert await store.get(NS, "k") == {"after": 1}
    finally:
        holder.close()
        await store.aclose()


async def test_calls_do_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    store = SQLiteStore(path, busy_timeout=0.5)
    await store.ping()
    holder = sqlite3.connect(path, isolation_level=None)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    try:
        holder.execute("BEGIN IMMEDIATE")
        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            with pytest.raises(StorageError):
                await store.put(NS, "k", {}, ttl=60)  # waits 0.5 s for the lock, on the store's thread
            tg.cancel_scope.cancel()
        assert ticks > 10
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await store.aclose()
