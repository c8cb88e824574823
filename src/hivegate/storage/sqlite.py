"""`SQLiteStore`: the storage interface in one SQLite file, the embedded default (tokens survive a restart).

One table `kv (ns, key, value JSON text, expires_at unix time)`, WAL journal, `synchronous=NORMAL` (a power cut may
lose the last commits, never corrupt the file). All database work runs on one thread that owns the one connection, so
no call blocks the event loop and calls are serialised in the order they were made. The atomic operations are single
statements, so they hold also between processes sharing the file: `add` is an upsert that only overwrites an expired
row, `take` is `DELETE ... RETURNING` (a `BEGIN IMMEDIATE` transaction on SQLite older than 3.35).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from hivegate.storage._records import check_namespace, check_ttl, decode, encode
from hivegate.storage.base import Record, StorageError

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires_at ON kv (expires_at);
"""
_GET = "SELECT value FROM kv WHERE ns = ? AND key = ? AND expires_at > ?"
_PUT = (
    "INSERT INTO kv (ns, key, value, expires_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)
_ADD = _PUT + " WHERE kv.expires_at <= ?"
_TAKE = "DELETE FROM kv WHERE ns = ? AND key = ? RETURNING value, expires_at"
_SELECT = "SELECT value, expires_at FROM kv WHERE ns = ? AND key = ?"
_DELETE = "DELETE FROM kv WHERE ns = ? AND key = ?"
_PURGE = "DELETE FROM kv WHERE expires_at <= ?"


class SQLiteStore:
    """Records in the SQLite file at `path`, created on first use (mode 0600, its directory 0700).

    `busy_timeout` is how long a call waits for another process's write lock before failing with `StorageError`.
    Expired rows are deleted in one sweep after a write once `purge_interval` seconds or `purge_every` writes have
    passed since the last sweep.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        purge_interval: float = 60.0,
        purge_every: int = 10_000,
    ) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._purge_interval = purge_interval
        self._purge_every = purge_every
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hivegate-sqlite")
        self._closed = False
        # Touched only on the executor's thread:
        self._conn: sqlite3.Connection | None = None
        self._writes = 0
        self._next_purge = 0.0

    async def get(self, namespace: str, key: str) -> Record | None:
        check_namespace(namespace)
        data = await self._run(self._get, namespace, key)
        return None if data is None else decode(data)

    async def put(self, namespace: str, key: str, value: Record, ttl: float) -> None:
        check_namespace(namespace)
        check_ttl(ttl)
        await self._run(self._put, namespace, key, encode(value).decode(), ttl)

    async def add(self, namespace: str, key: str, value: Record, ttl: float) -> bool:
        check_namespace(namespace)
        check_ttl(ttl)
        return await self._run(self._add, namespace, key, encode(value).decode(), ttl)

    async def take(self, namespace: str, key: str) -> Record | None:
        check_namespace(namespace)
        data = await self._run(self._take, namespace, key)
        return None if data is None else decode(data)

    async def delete(self, namespace: str, key: str) -> None:
        check_namespace(namespace)
        await self._run(self._delete, namespace, key)

    async def ping(self) -> None:
        await self._run(self._ping)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        finally:
            self._executor.shutdown(wait=False)

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise StorageError("the sqlite store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        except sqlite3.Error as exc:
            name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
            raise StorageError(f"sqlite store failed: {name}") from exc
        except OSError as exc:
            raise StorageError(f"sqlite store cannot open its file: {exc.strerror or type(exc).__name__}") from exc

    # Everything below runs on the executor's thread.

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        os.makedirs(self._path.parent, mode=0o700, exist_ok=True)
        os.close(os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))  # SQLite gives -wal and -shm the same mode
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
            conn.execute(_PURGE, (time.time(),))
        except BaseException:
            conn.close()
            raise
        self._next_purge = time.monotonic() + self._purge_interval
        return conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _ping(self) -> None:
        self._connection().execute("SELECT 1 FROM kv LIMIT 1").fetchall()

    def _get(self, namespace: str, key: str) -> str | None:
        row = self._connection().execute(_GET, (namespace, key, time.time())).fetchone()
        return None if row is None else str(row[0])

    def _put(self, namespace: str, key: str, data: str, ttl: float) -> None:
        self._connection().execute(_PUT, (namespace, key, data, time.time() + ttl))
        self._wrote()

    def _add(self, namespace: str, key: str, data: str, ttl: float) -> bool:
        now = time.time()
        added = self._connection().execute(_ADD, (namespace, key, data, now + ttl, now)).rowcount == 1
        self._wrote()
        return added

    def _take(self, namespace: str, key: str) -> str | None:
        conn = self._connection()
        if _RETURNING:
            rows = conn.execute(_TAKE, (namespace, key)).fetchall()  # fetchall: the statement ends, the lock goes
        else:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute(_SELECT, (namespace, key)).fetchall()
                conn.execute(_DELETE, (namespace, key))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        self._wrote()
        if not rows or rows[0][1] <= time.time():
            return None
        return str(rows[0][0])

    def _delete(self, namespace: str, key: str) -> None:
        self._connection().execute(_DELETE, (namespace, key))

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes >= self._purge_every or time.monotonic() >= self._next_purge:
            self._connection().execute(_PURGE, (time.time(),))
            self._writes = 0
            self._next_purge = time.monotonic() + self._purge_interval
