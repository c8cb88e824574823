"""RFC 7591 dynamic client registration (sections 2, 3.1-3.2) and OAuth Client ID Metadata Documents
(draft-ietf-oauth-client-id-metadata-document, adopted by the MCP authorization spec 2025-11-25): `ClientRegistry`,
the `ClientStore` of the embedded authorization server.

A client is found, in order, among the static clients of the config, the registered ones (store namespace `client`,
kept `client_ttl` after registration or last use), and, for a `client_id` that is an https URL with a path, the
metadata document at that URL. Documents are fetched through the SSRF guard (https only, public addresses only unless
`allow_private_metadata`, 5 s, at most 5 KB, redirects not followed) and cached in namespace `cimd` for their
`Cache-Control: max-age` clamped to [60 s, 24 h] (1 h without one); a URL that failed is not fetched again for 30 s.

Registration accepts public clients (`none`) and confidential ones (`client_secret_basic`, `client_secret_post`),
whose secret is returned once and stored as its SHA-256. Redirect URIs must be https, http on a loopback host, or a
reverse-domain private-use scheme (RFC 8252 sections 7.1 and 7.3). Registrations are limited per remote address by a
token bucket (1/s, burst 5, as ToolHive). Every refusal is an `OAuthError` with the RFC 7591 section 3.2.2 code and a
one-line description naming the field.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from hivegate.authserver.clients import AuthMethod, Client
from hivegate.authserver.config import StaticClient
from hivegate.authserver.errors import OAuthError
from hivegate.errors import ConfigError, FetchError, UnsafeURLError
from hivegate.httpclient.guard import GuardedHTTPClient, check_url
from hivegate.httpclient.loopback import is_loopback_host
from hivegate.storage.base import KeyValueStore

__all__ = ["ClientRegistry", "metadata_cache_ttl", "validate_redirect_uri"]

logger = logging.getLogger(__name__)

CLIENT_NAMESPACE = "client"
METADATA_NAMESPACE = "cimd"
DEFAULT_CLIENT_TTL = 30 * 86400.0
METADATA_MAX_BYTES = 5 * 1024
METADATA_TIMEOUT = 5.0
METADATA_TTL_DEFAULT, METADATA_TTL_MIN, METADATA_TTL_MAX = 3600.0, 60.0, 86400.0
METADATA_NEGATIVE_TTL = 30.0
MAX_METADATA_FETCHES = 8  # distinct documents fetched at once
MAX_TRACKED_REMOTES = 10_000
RENEW_AFTER = 86400.0  # a registered client in use has its expiry pushed back at most once a day (or half a ttl)

MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000
MAX_NAME_LENGTH = 256
MAX_FIELD_LENGTH = 2000
MAX_CONTACTS = 10
GRANT_TYPES = ("authorization_code", "refresh_token")
AUTH_METHODS: tuple[AuthMethod, ...] = ("none", "client_secret_basic", "client_secret_post")
_URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_TEXT_FIELDS = ("software_id", "software_version")
_FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about"})
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_NO_CACHE = re.compile(r"(?:^|,)\s*no-(?:store|cache)\s*(?:,|$)", re.IGNORECASE)
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


def validate_redirect_uri(uri: Any, where: str) -> str:
    """One redirect URI (RFC 6749 section 3.1.2, RFC 8252 section 7): `OAuthError("invalid_redirect_uri")` naming
    `where` unless it is https, http on 127.0.0.1 / [::1] / localhost, or a reverse-domain private-use scheme."""

    def refuse(reason: str) -> OAuthError:
        return OAuthError("invalid_redirect_uri", f"{where}: {reason}")

    if not isinstance(uri, str) or not uri:
        raise refuse("must be a non-empty string")
    if len(uri) > MAX_URI_LENGTH:
        raise refuse(f"longer than {MAX_URI_LENGTH} characters")
    if _UNSAFE_CHARS.search(uri) or not uri.isascii():
        raise refuse("must not contain spaces, control characters, backslashes or non-ASCII characters")
    if "#" in uri:
        raise refuse("must not contain a fragment")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise refuse("not a valid URI") from None
    scheme = parts.scheme
    if not scheme:
        raise refuse("must be an absolute URI")
    if scheme in _FORBIDDEN_SCHEMES:
        raise refuse(f"the {scheme} scheme is not allowed")
    if scheme in ("https", "http"):
        if not parts.hostname:
            raise refuse("must name a host")
        if parts.username is not None or parts.password is not None:
            raise refuse("must not contain user information")
        if scheme == "http" and not is_loopback_host(parts.hostname):
            raise refuse("http is only allowed on loopback (127.0.0.1, [::1], localhost); use https")
        return uri
    if "." not in scheme:
        raise refuse("a private-use scheme must be a reverse domain name such as com.example.app")
    if not (parts.netloc or parts.path):
        raise refuse("must have a path after the scheme")
    return uri


def metadata_cache_ttl(cache_control: str | None) -> float:
    """Seconds to keep a metadata document: its `max-age` clamped to [60 s, 24 h], 1 h without one; `no-store` and
    `no-cache` count as `max-age=0` (so 60 s: the floor that keeps a client id from costing a fetch per request)."""
    if _NO_CACHE.search(cache_control or ""):
        return METADATA_TTL_MIN
    match = _MAX_AGE.search(cache_control or "")
    if match is None:
        return METADATA_TTL_DEFAULT
    return min(max(float(match.group(1)), METADATA_TTL_MIN), METADATA_TTL_MAX)


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
        self._http = http
        self._client_ttl = client_ttl
        self._allow_private = allow_private_metadata
        self._clock = clock
        self._buckets = _TokenBuckets(rate, burst, MAX_TRACKED_REMOTES, clock)
        self._inflight: dict[str, asyncio.Task[Client | None]] = {}
        self._fetch_slots = asyncio.Semaphore(MAX_METADATA_FETCHES)
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
        return self._http is not None

    async def get(self, client_id: str) -> Client | None:
        """The client, or None when unknown, expired, or its metadata document cannot be had."""
        if not client_id or len(client_id) > MAX_URI_LENGTH:
            return None
        static = self._static.get(client_id)
        if static is not None:
            return static
        record = await self._store.get(CLIENT_NAMESPACE, client_id)
        if record is not None:
            return await self._registered(Client.from_record(record))
        if self._http is not None and client_id.startswith("https://"):
            try:
                _check_client_id_url(client_id)
            except _Refused as exc:
                logger.debug("not a client id metadata document URL: %s", exc)
                return None
            return await self._metadata_client(client_id)
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
        redirect_uris = _redirect_uris(metadata.get("redirect_uris"))
        method = _auth_method(metadata.get("token_endpoint_auth_method"))
        grant_types = _grant_types(metadata.get("grant_types"), strict=True)
        response_types = _response_types(metadata.get("response_types"))
        scope = self._scope(metadata.get("scope"))
        extras: dict[str, Any] = {}
        name = _text(metadata, "client_name", MAX_NAME_LENGTH)
        for key in _URL_FIELDS:
            extras[key] = _https_url(metadata, key)
        for key in _TEXT_FIELDS:
            extras[key] = _text(metadata, key, MAX_FIELD_LENGTH)
        extras["contacts"] = _contacts(metadata.get("contacts"))

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

    # -- metadata documents -----------------------------------------------------------------------------------------

    async def _metadata_client(self, url: str) -> Client | None:
        """The client the document at `url` (a valid client id URL) describes: cached, or fetched once for all callers
        that ask at the same time."""
        key = hashlib.sha256(url.encode()).hexdigest()
        cached = await self._store.get(METADATA_NAMESPACE, key)
        if cached is not None and float(cached.get("until", 0)) > self._clock():
            record = cached.get("client")
            return Client.from_record(record) if isinstance(record, Mapping) else None
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch_metadata(url, key))
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._landed, key))
        return await asyncio.shield(task)

    def _landed(self, key: str, task: asyncio.Task[Client | None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved, so a fetch whose callers all left is not reported as unhandled

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
        assert self._http is not None
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
            redirect_uris = _redirect_uris(doc.get("redirect_uris"))
            grant_types = _grant_types(doc.get("grant_types"), strict=False)
            _response_types(doc.get("response_types"), strict=False)
            name = _text(doc, "client_name", MAX_NAME_LENGTH)
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
    if not url.isascii() or _UNSAFE_CHARS.search(url) or "#" in url:
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


# -- metadata fields (RFC 7591 section 2) ------------------------------------------------------------------------------


def _redirect_uris(value: Any) -> tuple[str, ...]:
    if value is None:
        raise OAuthError("invalid_redirect_uri", "redirect_uris: required")
    if not isinstance(value, list) or not value:
        raise OAuthError("invalid_redirect_uri", "redirect_uris: must be a non-empty array of URIs")
    if len(value) > MAX_REDIRECT_URIS:
        raise OAuthError("invalid_redirect_uri", f"redirect_uris: at most {MAX_REDIRECT_URIS} entries")
    return tuple(validate_redirect_uri(uri, f"redirect_uris[{i}]") for i, uri in enumerate(value))


def _auth_method(value: Any) -> AuthMethod:
    if value is None:
        return "none"
    for method in AUTH_METHODS:
        if value == method:
            return method
    shown = repr(value[:40]) if isinstance(value, str) else "a non-string"
    raise OAuthError(
        "invalid_client_metadata",
        f"token_endpoint_auth_method: {shown} is not supported (use {', '.join(AUTH_METHODS)})",
    )


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise OAuthError("invalid_client_metadata", f"{field}: must be an array of strings")
    return value


def _grant_types(value: Any, *, strict: bool) -> tuple[str, ...]:
    """`strict` (registration) refuses grant types other than ours; a metadata document may list more."""
    if value is None:
        return GRANT_TYPES
    listed = _strings(value, "grant_types")
    unknown = [g for g in listed if g not in GRANT_TYPES]
    if strict and unknown:
        raise OAuthError("invalid_client_metadata", f"grant_types: {unknown[0][:60]!r} is not supported")
    if "authorization_code" not in listed:
        raise OAuthError("invalid_client_metadata", "grant_types: must include authorization_code")
    return tuple(g for g in GRANT_TYPES if g in listed)


def _response_types(value: Any, *, strict: bool = True) -> tuple[str, ...]:
    if value is None:
        return ("code",)
    listed = _strings(value, "response_types")
    unknown = [r for r in listed if r != "code"]
    if (strict and unknown) or "code" not in listed:
        raise OAuthError("invalid_client_metadata", "response_types: only code is supported")
    return ("code",)


def _text(metadata: Mapping[str, Any], field: str, limit: int) -> str | None:
    value = metadata.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OAuthError("invalid_client_metadata", f"{field}: must be a string")
    if len(value) > limit:
        raise OAuthError("invalid_client_metadata", f"{field}: longer than {limit} characters")
    return value


def _https_url(metadata: Mapping[str, Any], field: str) -> str | None:
    value = _text(metadata, field, MAX_FIELD_LENGTH)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or _UNSAFE_CHARS.search(value)
    ):
        raise OAuthError("invalid_client_metadata", f"{field}: must be an https URL")
    return value


def _contacts(value: Any) -> list[str] | None:
    if value is None:
        return None
    contacts = _strings(value, "contacts")
    if len(contacts) > MAX_CONTACTS:
        raise OAuthError("invalid_client_metadata", f"contacts: at most {MAX_CONTACTS} entries")
    for i, contact in enumerate(contacts):
        if not contact or len(contact) > MAX_FIELD_LENGTH:
            raise OAuthError("invalid_client_metadata", f"contacts[{i}]: must be 1 to {MAX_FIELD_LENGTH} characters")
    return contacts or None
