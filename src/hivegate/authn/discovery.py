"""OpenID Connect Discovery 1.0 section 4: the issuer's `/.well-known/openid-configuration`, fetched lazily.

The document is fetched on first use (not at start-up, so the gateway starts while the IdP is down), retried up to
3 attempts with 0.5-2 s exponential backoff, and accepted only when its `issuer` equals the configured issuer exactly
(section 4.3). After a failed round, callers get the same error without refetching for `retry_after` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hivegate.core.singleflight import SingleFlight
from hivegate.errors import FetchError, HivegateError, IssuerMismatchError, UnsafeURLError
from hivegate.httpclient.guard import DOCUMENT_MAX_BYTES, GuardedHTTPClient

# IssuerMismatchError is defined in hivegate.errors and re-exported here, where it is raised.
__all__ = ["WELL_KNOWN_OPENID", "IssuerMismatchError", "OIDCDiscovery", "discovery_url"]

logger = logging.getLogger(__name__)

WELL_KNOWN_OPENID = "/.well-known/openid-configuration"


def discovery_url(issuer: str) -> str:
    """The discovery URL of `issuer` (section 4: a trailing slash of the issuer is dropped)."""
    return issuer.rstrip("/") + WELL_KNOWN_OPENID


class OIDCDiscovery:
    """The issuer's provider metadata, fetched once and shared by every caller."""

    def __init__(
        self,
        http: GuardedHTTPClient,
        issuer: str,
        *,
        attempts: int = 3,
        backoff: tuple[float, float] = (0.5, 2.0),
        retry_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._issuer = issuer
        self._url = discovery_url(issuer)
        self._attempts = attempts
        self._backoff = backoff
        self._retry_after = retry_after
        self._clock = clock
        self._sleep = sleep
        self._metadata: Mapping[str, Any] | None = None
        self._failure: tuple[float, HivegateError] | None = None
        self._fetches: SingleFlight[None, Mapping[str, Any]] = SingleFlight()

    async def metadata(self) -> Mapping[str, Any]:
        """The validated provider metadata. Raises `FetchError` (or `UnsafeURLError`) when it cannot be had."""
        if self._metadata is not None:
            return self._metadata
        if self._failure is not None and self._clock() - self._failure[0] < self._retry_after:
            raise self._failure[1]
        return await self._fetches.run(None, self._fetch_and_remember)

    async def _fetch_and_remember(self) -> Mapping[str, Any]:
        try:
            self._metadata = await self._fetch_with_retries()
        except (FetchError, UnsafeURLError) as exc:
            self._failure = (self._clock(), exc)
            raise
        self._failure = None
        return self._metadata

    async def jwks_uri(self) -> str:
        """The issuer's `jwks_uri` (section 3, REQUIRED)."""
        uri = (await self.metadata())["jwks_uri"]
        return str(uri)  # _validate checked it is a string

    async def introspection_endpoint(self) -> str | None:
        """The issuer's RFC 7662 `introspection_endpoint` (RFC 8414 section 2), or None when it publishes none."""
        uri = (await self.metadata()).get("introspection_endpoint")
        return uri if isinstance(uri, str) and uri else None

    async def _fetch_with_retries(self) -> Mapping[str, Any]:
        low, high = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                return await self._fetch_once()
            except (UnsafeURLError, IssuerMismatchError):
                raise
            except FetchError as exc:
                if attempt == self._attempts:
                    logger.warning("OIDC discovery at %s failed after %d attempts: %s", self._url, attempt, exc)
                    raise
                delay = min(high, low * 2 ** (attempt - 1))
                logger.info("OIDC discovery at %s failed (%s); retrying in %.1f s", self._url, exc, delay)
                await self._sleep(delay)
        raise AssertionError("unreachable")

    async def _fetch_once(self) -> Mapping[str, Any]:
        resp = await self._http.fetch("GET", self._url, max_bytes=DOCUMENT_MAX_BYTES)
        if resp.status != 200:
            raise FetchError(f"OIDC discovery at {self._url} answered HTTP {resp.status}")
        return self._validate(resp.json())

    def _validate(self, doc: Any) -> Mapping[str, Any]:
        if not isinstance(doc, dict):
            raise FetchError(f"OIDC discovery at {self._url} did not return a JSON object")
        if doc.get("issuer") != self._issuer:
            raise IssuerMismatchError(
                f"OIDC discovery at {self._url} names issuer {doc.get('issuer')!r}, not the configured {self._issuer!r}"
            )
        if not isinstance(doc.get("jwks_uri"), str):
            raise FetchError(f"OIDC discovery at {self._url} has no jwks_uri")
        return doc
