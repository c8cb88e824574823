"""OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, adopted by the MCP authorization
spec 2025-11-25): `MetadataDocuments`, the clients whose `client_id` is an https URL with a path, described by the
document at that URL. `ClientRegistry` asks it for such a client id when it is neither static nor registered.

Documents are fetched through the SSRF guard (https only, public addresses only unless `allow_private`, 5 s, at most
5 KB, redirects not followed) and cached in store namespace `cimd` for their `Cache-Control: max-age` clamped to
[60 s, 24 h] (1 h without one); a URL that failed is not fetched again for 30 s. Callers asking for the same document
at the same time share one fetch (`_fetches`), and at most `MAX_METADATA_FETCHES` distinct documents are fetched at
once. A document describes a public client only (`token_endpoint_auth_method: none`); its fields are checked as a
registration's (`client_fields`), more leniently for grant and response types.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from urllib.parse import SplitResult, unquote, urlsplit

from hivegate.authserver import client_fields as fields
from hivegate.authserver.clients import Client
from hivegate.authserver.errors import OAuthError
from hivegate.core.singleflight import SingleFlight
from hivegate.errors import FetchError, UnsafeURLError
from hivegate.httpclient.guard import GuardedHTTPClient, check_url
from hivegate.storage.base import KeyValueStore

__all__ = ["MetadataDocuments", "metadata_cache_ttl"]

# the logger these messages had before documents left `registration`: operators' log filters keep working
logger = logging.getLogger("hivegate.authserver.registration")

METADATA_NAMESPACE = "cimd"
METADATA_MAX_BYTES = 5 * 1024
METADATA_TIMEOUT = 5.0
METADATA_TTL_DEFAULT, METADATA_TTL_MIN, METADATA_TTL_MAX = 3600.0, 60.0, 86400.0
METADATA_NEGATIVE_TTL = 30.0
MAX_METADATA_FETCHES = 8  # distinct documents fetched at once
_NO_CACHE = re.compile(r"(?:^|,)\s*no-(?:store|cache)\s*(?:,|$)", re.IGNORECASE)
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


def metadata_cache_ttl(cache_control: str | None) -> float:
    """Seconds to keep a metadata document: its `max-age` clamped to [60 s, 24 h], 1 h without one; `no-store` and
    `no-cache` count as `max-age=0` (so 60 s: the floor that keeps a client id from costing a fetch per request)."""
    if _NO_CACHE.search(cache_control or ""):
        return METADATA_TTL_MIN
    match = _MAX_AGE.search(cache_control or "")
    if match is None:
        return METADATA_TTL_DEFAULT
    return min(max(float(match.group(1)), METADATA_TTL_MIN), METADATA_TTL_MAX)


class MetadataDocuments:
    """The clients described by metadata documents, fetched with `http` and cached in `store`.

    Give `http` a client of its own with the guard's defaults (`allow_private=False`, no http), since names resolving
    to private addresses are refused by that client's resolver. `allow_private` lets documents come from literal
    private and loopback addresses (tests only).
    """

    def __init__(
        self, store: KeyValueStore, http: GuardedHTTPClient, *, allow_private: bool, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._http = http
        self._allow_private = allow_private
        self._clock = clock
        self._fetches: SingleFlight[str, Client | None] = SingleFlight()
        self._fetch_slots = asyncio.Semaphore(MAX_METADATA_FETCHES)

    async def get(self, client_id: str) -> Client | None:
        """The client an https `client_id` names, or None when it is not a valid client id URL or its document cannot
        be had."""
        try:
            _check_client_id_url(client_id)
        except _Refused as exc:
            logger.debug("not a client id metadata document URL: %s", exc)
            return None
        return await self._metadata_client(client_id)

    async def _metadata_client(self, url: str) -> Client | None:
        """The client the document at `url` (a valid client id URL) describes: cached, or fetched once for all callers
        that ask at the same time."""
        key = hashlib.sha256(url.encode()).hexdigest()
        cached = await self._store.get(METADATA_NAMESPACE, key)
        if cached is not None and float(cached.get("until", 0)) > self._clock():
            record = cached.get("client")
            return Client.from_record(record) if isinstance(record, Mapping) else None
        return await self._fetches.run(key, lambda: self._fetch_metadata(url, key))

    async def _fetch_metadata(self, url: str, key: str) -> Client | None:
        shown = _without_query(url)
        try:
            client, ttl = await self._load_metadata(url)
        except (_Refused, FetchError, UnsafeURLError, TimeoutError) as exc:
            if isinstance(exc, UnsafeURLError):  # its message suggests an authn flag that does not apply here
                reason = "refused by the SSRF guard: only https to public addresses"
            else:
                reason = str(exc) or "timed out"
            logger.info("client metadata document %s refused: %s", shown, reason)
            until = self._clock() + METADATA_NEGATIVE_TTL
            await self._store.put(METADATA_NAMESPACE, key, {"until": until}, METADATA_NEGATIVE_TTL)
            return None
        until = self._clock() + ttl
        await self._store.put(METADATA_NAMESPACE, key, {"until": until, "client": client.to_record()}, ttl)
        return client

    async def _load_metadata(self, url: str) -> tuple[Client, float]:
        try:
            check_url(url, allow_http=False, allow_private=self._allow_private)
        except ValueError:
            raise _Refused("not a valid URL") from None
        async with self._fetch_slots, asyncio.timeout(METADATA_TIMEOUT):
            response = await self._http.fetch("GET", url, max_bytes=METADATA_MAX_BYTES)
        if 300 <= response.status < 400:
            raise _Refused(f"HTTP {response.status}: redirects are not followed")
        if response.status != 200:
            raise _Refused(f"HTTP {response.status}")
        doc = response.json()
        if not isinstance(doc, Mapping):
            raise _Refused("not a JSON object")
        if doc.get("client_id") != url:
            raise _Refused("its client_id is not the document's URL")
        for forbidden in ("client_secret", "client_secret_expires_at"):
            if forbidden in doc:
                raise _Refused(f"{forbidden}: not allowed in a metadata document")
        method = doc.get("token_endpoint_auth_method")
        if method not in (None, "none"):
            raise _Refused(f"token_endpoint_auth_method: only none is supported, got {str(method)[:40]!r}")
        try:
            redirect_uris = fields.redirect_uris(doc.get("redirect_uris"))
            grant_types = fields.grant_types(doc.get("grant_types"), strict=False)
            fields.response_types(doc.get("response_types"), strict=False)
            name = fields.text(doc, "client_name", fields.MAX_NAME_LENGTH)
        except OAuthError as exc:
            raise _Refused(exc.description) from None
        client = Client(
            client_id=url,
            redirect_uris=redirect_uris,
            source="metadata",
            client_name=name or "",
            grant_types=grant_types,
            issued_at=int(self._clock()),
        )
        return client, metadata_cache_ttl(response.headers.get("cache-control"))


class _Refused(Exception):
    """A metadata document that cannot describe a client; the message says why (one line, no secrets)."""


def _check_client_id_url(url: str) -> None:
    """Client ID Metadata Document section 3: https, a path without dot segments, no fragment, no user information."""
    if not url.isascii() or fields.UNSAFE_CHARS.search(url) or "#" in url:
        raise _Refused("not a valid client id URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise _Refused("not a valid client id URL") from None
    if parts.scheme != "https" or not parts.hostname:
        raise _Refused("a client id URL must be https with a host")
    if parts.username is not None or parts.password is not None:
        raise _Refused("a client id URL must not contain user information")
    if parts.path in ("", "/"):
        raise _Refused("a client id URL must have a path")
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        raise _Refused("a client id URL must not contain . or .. path segments")


def _without_query(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    return SplitResult(parts.scheme, parts.netloc, parts.path, "", "").geturl()
