"""`RedisStore`: the storage interface on a Redis server (6.2 or later) shared by every replica.

A record is the JSON string at `{key_prefix}{namespace}:{key}` with Redis's own expiry (PX, in milliseconds, at least
1). The atomic operations are single commands: `add` is `SET NX PX`, `take` is `GETDEL`. Connection and socket
timeouts make an unreachable Redis a prompt `StorageError` rather than a hang; a dropped connection is retried once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from hivegate.storage._records import check_namespace, check_ttl, decode, encode
from hivegate.storage.base import Record, StorageError

__all__ = ["RedisStore"]

SCHEMES = ("redis", "rediss", "unix")


class RedisStore:
    """Records on the Redis server at `url` (`redis://[user:password@]host:port/db`, `rediss://` for TLS, or
    `unix://`), under keys that start with `key_prefix`.

    `connect_timeout` bounds opening a connection and `socket_timeout` waiting for an answer, in seconds; at most
    `max_connections` are open, and a call waits up to `socket_timeout` for one of them to be free.
    `tls_ca_file` is a PEM file of the CAs to trust for `rediss://` (default: the system's).
    """

    def __init__(
        self,
        url: str,
        key_prefix: str = "hivegate:",
        *,
        connect_timeout: float = 1.0,
        socket_timeout: float = 2.0,
        max_connections: int = 64,
        tls_ca_file: str | None = None,
    ) -> None:
        if urlsplit(url).scheme not in SCHEMES:
            raise ValueError("a Redis URL must start with redis://, rediss:// or unix://")
        self._prefix = key_prefix
        self._closed = False
        tls: dict[str, Any] = {} if tls_ca_file is None else {"ssl_ca_certs": tls_ca_file}
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,  # waiting for a free connection when all are busy
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), 1, supported_errors=(RedisConnectionError,)),
            retry_on_error=[RedisConnectionError],
            **tls,
        )
        self._client = Redis.from_pool(pool)

    async def get(self, namespace: str, key: str) -> Record | None:
        data = await self._call(self._client.get(self._key(namespace, key)))
        return None if data is None else decode(data)

    async def put(self, namespace: str, key: str, value: Record, ttl: float) -> None:
        name = self._key(namespace, key)
        await self._call(self._client.set(name, encode(value), px=_milliseconds(ttl)))

    async def add(self, namespace: str, key: str, value: Record, ttl: float) -> bool:
        name = self._key(namespace, key)
        return bool(await self._call(self._client.set(name, encode(value), px=_milliseconds(ttl), nx=True)))

    async def take(self, namespace: str, key: str) -> Record | None:
        data = await self._call(self._client.getdel(self._key(namespace, key)))
        return None if data is None else decode(data)

    async def delete(self, namespace: str, key: str) -> None:
        await self._call(self._client.delete(self._key(namespace, key)))

    async def ping(self) -> None:
        self._check_open()
        if not await self._call(self._client.ping()):
            raise StorageError("redis store did not answer PING")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RedisError, OSError):  # closing what is already broken
            await self._client.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the redis store is closed")

    def _key(self, namespace: str, key: str) -> str:
        self._check_open()
        check_namespace(namespace)
        return f"{self._prefix}{namespace}:{key}"

    async def _call(self, command: Awaitable[Any]) -> Any:
        try:
            return await command
        except (RedisError, OSError) as exc:  # OSError includes TimeoutError
            raise StorageError(f"redis store failed: {type(exc).__name__}") from exc


def _milliseconds(ttl: float) -> int:
    check_ttl(ttl)
    return max(1, math.ceil(ttl * 1000))
