"""Credentials at rest: the authorization server's store holds what would let someone act as a user (upstream
access, ID and refresh tokens, the PKCE verifiers of logins in progress) only sealed with an AEAD (RFC 5116).

`Sealer` seals with AES-256-GCM (a random 96-bit nonce per record) under a key derived from each configured HMAC
secret (`keys.HMACKeys.hkdf`: HKDF-SHA256, RFC 5869, with a fixed info label), so no key of its own needs
configuring. The associated data is the record's namespace and key: a sealed record copied under another key does
not open. Rotation works like the HMAC keys': the first secret seals, every configured one opens.

`SealedStore` wraps a `KeyValueStore` and seals whole records of the namespaces given to it, stored as
`{"sealed": "hgs1.<base64url nonce+ciphertext>"}`. A record sealed with an older key, or written in clear by an
older hivegate, is read once and written back sealed with the current key (for the namespace's lifespan: the store
does not tell how long the old record had left). A record that opens with no configured key is absent (logged
without its content). Other namespaces pass through untouched: they hold hashes (clients' secrets, token lookups)
or nothing secret.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hivegate.authserver.keys import HMACKeys
from hivegate.storage.base import KeyValueStore, Record

__all__ = ["SEAL_INFO", "SealedStore", "Sealer"]

logger = logging.getLogger("hivegate.authserver")

SEAL_INFO = b"hivegate authserver store sealing v1"
_VERSION = "hgs1."
_NONCE = 12
_FIELD = "sealed"


def _associated(namespace: str, key: str) -> bytes:
    return f"{namespace}\x00{key}".encode()


class Sealer:
    """AES-256-GCM with the record's namespace and key as associated data: the first key seals, any key opens."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or any(len(k) != 32 for k in keys):
            raise ValueError("sealing needs at least one 32-byte key")
        self._aeads = [AESGCM(k) for k in keys]

    @classmethod
    def from_hmac_keys(cls, keys: HMACKeys) -> Sealer:
        """Keys derived from the configured HMAC secrets (the current one first)."""
        return cls(keys.hkdf(SEAL_INFO))

    def seal(self, namespace: str, key: str, value: Any) -> str:
        """`value` (JSON) sealed for the record `namespace`/`key`."""
        nonce = os.urandom(_NONCE)
        sealed = self._aeads[0].encrypt(nonce, orjson.dumps(value), _associated(namespace, key))
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()

    def open(self, namespace: str, key: str, text: object) -> tuple[Any, bool] | None:
        """The value sealed for `namespace`/`key` and whether it was sealed with the current key; None when `text`
        is not sealed text, was sealed for another record, was altered, or no configured key opens it."""
        if not isinstance(text, str) or not text.startswith(_VERSION):
            return None
        body = text[len(_VERSION) :]
        try:
            data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(data) < _NONCE + 16:
            return None
        associated = _associated(namespace, key)
        for i, aead in enumerate(self._aeads):
            try:
                plain = aead.decrypt(data[:_NONCE], data[_NONCE:], associated)
            except InvalidTag:
                continue
            return orjson.loads(plain), i == 0
        return None


class SealedStore:
    """A `KeyValueStore` that seals the records of `lifespans`' namespaces (namespace → seconds a record found
    sealed with an old key or in clear is written back for) and passes the others through."""

    def __init__(self, store: KeyValueStore, sealer: Sealer, lifespans: Mapping[str, float]) -> None:
        self._store = store
        self._sealer = sealer
        self._lifespans = dict(lifespans)

    @property
    def sealer(self) -> Sealer:
        return self._sealer

    async def get(self, namespace: str, key: str) -> Record | None:
        found = await self._store.get(namespace, key)
        if found is None or namespace not in self._lifespans:
            return found
        record, current = self._open(namespace, key, found)
        if record is not None and not current:
            await self._store.put(namespace, key, self._seal(namespace, key, record), self._lifespans[namespace])
        return record

    async def put(self, namespace: str, key: str, value: Record, ttl: float) -> None:
        await self._store.put(namespace, key, self._seal(namespace, key, value), ttl)

    async def add(self, namespace: str, key: str, value: Record, ttl: float) -> bool:
        return await self._store.add(namespace, key, self._seal(namespace, key, value), ttl)

    async def take(self, namespace: str, key: str) -> Record | None:
        found = await self._store.take(namespace, key)
        if found is None or namespace not in self._lifespans:
            return found
        return self._open(namespace, key, found)[0]

    async def delete(self, namespace: str, key: str) -> None:
        await self._store.delete(namespace, key)

    async def ping(self) -> None:
        await self._store.ping()

    async def aclose(self) -> None:
        await self._store.aclose()

    def _seal(self, namespace: str, key: str, value: Record) -> Record:
        if namespace not in self._lifespans:
            return value
        return {_FIELD: self._sealer.seal(namespace, key, value)}

    def _open(self, namespace: str, key: str, found: Record) -> tuple[Record | None, bool]:
        """(the record, whether it is sealed with the current key)."""
        if set(found) != {_FIELD}:
            logger.info("authserver store: sealing a %s record written in clear by an older version", namespace)
            return found, False
        opened = self._sealer.open(namespace, key, found[_FIELD])
        if opened is None or not isinstance(opened[0], dict):
            logger.warning(
                "authserver store: a %s record does not open with any configured HMAC secret; treated as absent",
                namespace,
            )
            return None, True
        return opened[0], opened[1]
