"""Storage for the embedded authorization server and the vMCP shared sessions: one interface (`KeyValueStore`),
three implementations.

`open_store(kind, ...)` builds one from configuration: `memory`, `sqlite` (a file; the default) or `redis` (shared by
replicas). Only `redis` needs the redis package (the `redis` extra), imported when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hivegate.errors import ConfigError
from hivegate.storage.base import KeyValueStore, Record, StorageError
from hivegate.storage.memory import MemoryStore
from hivegate.storage.sqlite import SQLiteStore

if TYPE_CHECKING:
    from hivegate.storage.redis import RedisStore

__all__ = ["KeyValueStore", "MemoryStore", "Record", "RedisStore", "SQLiteStore", "StorageError", "open_store"]


def open_store(
    kind: str,
    *,
    path: str | None = None,
    url: str | None = None,
    key_prefix: str = "hivegate:",
) -> KeyValueStore:
    """A store of the given kind: `memory`; `sqlite` with the file `path`; `redis` with `url` and `key_prefix`.

    Nothing is connected yet: the first operation (or `ping`) opens the file or the connection.
    """
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        if not path:
            raise ValueError("a sqlite store needs a path")
        return SQLiteStore(path)
    if kind == "redis":
        if not url:
            raise ValueError("a redis store needs a url")
        return _redis_store_class()(url, key_prefix)
    raise ValueError(f"unknown storage kind {kind!r}: use memory, sqlite or redis")


def _redis_store_class() -> type[RedisStore]:
    try:
        from hivegate.storage.redis import RedisStore
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "redis":
            raise ConfigError("storage type redis needs the redis extra: pip install 'hivegate[redis]'") from None
        raise
    return RedisStore


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        return _redis_store_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
