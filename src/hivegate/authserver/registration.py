"""RFC 7591 dynamic client registration (sections 2, 3.1-3.2): `ClientRegistry`, the `ClientStore` of the embedded
authorization server.

A client is found, in order, among the static clients of the config, the registered ones (store namespace `client`,
kept `client_ttl` after registration or last use), and, for a `client_id` that is an https URL with a path, the
OAuth Client ID Metadata Document at that URL (`client_metadata.MetadataDocuments`: fetched through the SSRF guard,
cached, one fetch for callers asking at the same time).

Registration accepts public clients (`none`) and confidential ones (`client_secret_basic`, `client_secret_post`),
whose secret is returned once and stored as its SHA-256. Redirect URIs must be https, http on a loopback host, or a
reverse-domain private-use scheme (RFC 8252 sections 7.1 and 7.3; checked in `client_fields`). Registrations are
limited per remote address by a token bucket (1/s, burst 5, as ToolHive). Every refusal is an `OAuthError` with the
RFC 7591 section 3.2.2 code and a one-line description naming the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hivegate.authserver import client_fields as fields
from hivegate.authserver.client_metadata import MetadataDocuments
from hivegate.authserver.clients import Client
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.settings import StaticClient
from hivegate.errors import ConfigError
from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.storage.base import KeyValueStore

__all__ = ["ClientRegistry"]

logger = logging.getLogger(__name__)

CLIENT_NAMESPACE = "client"
DEFAULT_CLIENT_TTL = 30 * 86400.0
MAX_TRACKED_REMOTES = 10_000
RENEW_AFTER = 86400.0  # a registered client in use has its expiry pushed back at most once a day (or half a ttl)

_URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_TEXT_FIELDS = ("software_id", "software_version")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class _TokenBuckets:
    """A token bucket per remote address, the least recently seen forgotten beyond `capacity` remotes."""

    def __init__(self, rate: float, burst: int, capacity: int, clock: Callable[[], float]) -> None:
        self._rate, self._burst, self._capacity, self._clock = rate, burst, capacity, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # remote -> (tokens, updated)

    def take(self, remote: str) -> float:
        """0 if a token was taken, else the seconds until one is available."""
        now = self._clock()
        tokens, updated = self._buckets.pop(remote, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + max(0.0, now - updated) * self._rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self._rate
        self._buckets[remote] = (tokens, now)
        while len(self._buckets) > self._capacity:
            self._buckets.popitem(last=False)
        return wait


class ClientRegistry:
    """The `ClientStore`: static clients, RFC 7591 registrations kept in `store`, and Client ID Metadata Documents.

    `http` fetches metadata documents; give it a client of its own with the guard's defaults (`allow_private=False`,
    no http), since names resolving to private addresses are refused by that client's resolver. With `http=None`
    metadata documents are not supported and URL client ids are unknown. `allow_private_metadata` lets documents
    come from literal private and loopback addresses (tests only).
    """

    def __init__(
        self,
        store: KeyValueStore,
        *,
        static: Sequence[StaticClient] = (),
        scopes_supported: Sequence[str],
        http: GuardedHTTPClient | None = None,
        client_ttl: float = DEFAULT_CLIENT_TTL,
        rate: float = 1.0,
        burst: int = 5,
        allow_private_metadata: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (client_ttl > 0 and rate > 0 and burst >= 1):
            raise ValueError("client_ttl and rate must be > 0 and burst >= 1")
        self._store = store
        self._scopes = frozenset(scopes_supported)
        self._documents = (
            MetadataDocuments(store, http, allow_private=allow_private_metadata, clock=clock)
            if http is not None
            else None
        )
        self._client_ttl = client_ttl
        self._clock = clock
        self._buckets = _TokenBuckets(rate, burst, MAX_TRACKED_REMOTES, clock)
        self._static: dict[str, Client] = {}
        for i, entry in enumerate(static):
            if entry.client_id in self._static:
                raise ConfigError(f"clients[{i}].clientId: {entry.client_id!r} is configured twice")
            self._static[entry.client_id] = Client(
                client_id=entry.client_id,
                redirect_uris=tuple(entry.redirect_uris),
                source="static",
                client_name=entry.client_name,
                token_endpoint_auth_method="client_secret_basic" if entry.client_secret else "none",
                secret_hash=_hash(entry.client_secret) if entry.client_secret else None,
                grant_types=entry.grant_types,
            )

    @property
    def metadata_documents_supported(self) -> bool:
        """For `client_id_metadata_document_supported` in the server's metadata."""
        return self._documents is not None

    async def get(self, client_id: str) -> Client | None:
        """The client, or None when unknown, expired, or its metadata document cannot be had."""
        if not client_id or len(client_id) > fields.MAX_URI_LENGTH:
            return None
        static = self._static.get(client_id)
        if static is not None:
            return static
        record = await self._store.get(CLIENT_NAMESPACE, client_id)
        if record is not None:
            return await self._registered(Client.from_record(record))
        if self._documents is not None and client_id.startswith("https://"):
            return await self._documents.get(client_id)
        return None

    async def register(self, metadata: Any, *, remote: str) -> tuple[Client, dict[str, Any]]:
        """RFC 7591 section 3.1: validate the request's metadata and register a client; the client and the section
        3.2.1 response (which holds the `client_secret` of a confidential client, the only time it is revealed)."""
        wait = self._buckets.take(remote)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise OAuthError(
                "invalid_request", "too many registrations; retry later", status=429, retry_after=retry_after
            )
        if not isinstance(metadata, Mapping):
            raise OAuthError("invalid_client_metadata", "the registration request must be a JSON object")
        redirect_uris = fields.redirect_uris(metadata.get("redirect_uris"))
        method = fields.auth_method(metadata.get("token_endpoint_auth_method"))
        grant_types = fields.grant_types(metadata.get("grant_types"), strict=True)
        response_types = fields.response_types(metadata.get("response_types"))
        scope = self._scope(metadata.get("scope"))
        extras: dict[str, Any] = {}
        name = fields.text(metadata, "client_name", fields.MAX_NAME_LENGTH)
        for key in _URL_FIELDS:
            extras[key] = fields.https_url(metadata, key)
        for key in _TEXT_FIELDS:
            extras[key] = fields.text(metadata, key, fields.MAX_FIELD_LENGTH)
        extras["contacts"] = fields.contacts(metadata.get("contacts"))

        now = int(self._clock())
        secret = secrets.token_urlsafe(32) if method != "none" else None
        while True:
            client = Client(
                client_id=secrets.token_urlsafe(24),
                redirect_uris=redirect_uris,
                source="dynamic",
                client_name=name or "",
                token_endpoint_auth_method=method,
                secret_hash=_hash(secret) if secret is not None else None,
                grant_types=grant_types,
                scope=scope,
                issued_at=now,
                expires_at=now + int(self._client_ttl),
            )
            if await self._store.add(CLIENT_NAMESPACE, client.client_id, client.to_record(), self._client_ttl):
                break
        logger.info("registered OAuth client %s (%s) for %s", client.client_id, method, remote)

        response: dict[str, Any] = {"client_id": client.client_id, "client_id_issued_at": now}
        if secret is not None:
            response |= {"client_secret": secret, "client_secret_expires_at": 0}
        response |= {
            "redirect_uris": list(redirect_uris),
            "token_endpoint_auth_method": method,
            "grant_types": list(grant_types),
            "response_types": list(response_types),
        }
        if name:
            response["client_name"] = name
        if scope is not None:
            response["scope"] = scope
        response |= {key: value for key, value in extras.items() if value}
        return client, response

    # -- registered clients ---------------------------------------------------------------------------------------

    async def _registered(self, client: Client) -> Client | None:
        now = self._clock()
        if client.expires_at is not None:
            if client.expires_at <= now:
                return None
            if client.expires_at - now < self._client_ttl - min(RENEW_AFTER, self._client_ttl / 2):
                client = dataclasses.replace(client, expires_at=int(now + self._client_ttl))
                await self._store.put(CLIENT_NAMESPACE, client.client_id, client.to_record(), self._client_ttl)
        return client

    def _scope(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise OAuthError("invalid_client_metadata", "scope: must be a space-separated string")
        tokens = list(dict.fromkeys(value.split()))
        for token in tokens:
            if token not in self._scopes:
                raise OAuthError("invalid_client_metadata", f"scope: {token[:40]!r} is not supported")
        return " ".join(tokens) or None
