"""What every store checks and encodes the same way: namespaces, ttls, and records as JSON objects."""

from __future__ import annotations

import orjson

from hivegate.storage.base import Record, StorageError

__all__ = ["check_namespace", "check_ttl", "decode", "encode"]


def check_namespace(namespace: str) -> None:
    """A namespace is a non-empty name without ':' (Redis keys are `{prefix}{namespace}:{key}`, so a ':' in it could
    make two namespaces share keys)."""
    if not namespace or ":" in namespace:
        raise ValueError("a storage namespace must be non-empty and contain no ':'")


def check_ttl(ttl: float) -> None:
    if not ttl > 0:  # also refuses NaN
        raise ValueError("a storage ttl must be > 0 seconds")


def encode(value: Record) -> bytes:
    """The record as JSON; a value that is not a JSON object is the caller's bug (TypeError)."""
    if not isinstance(value, dict):
        raise TypeError("a storage record must be a dict")
    return orjson.dumps(value)


def decode(data: bytes | str) -> Record:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise StorageError("the store returned a record that is not JSON") from None
    if not isinstance(value, dict):
        raise StorageError("the store returned a record that is not a JSON object")
    return value
