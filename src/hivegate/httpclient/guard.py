"""The SSRF guard and the client behind it: every discovery, JWKS, introspection, client metadata document, upstream
IdP and STS request goes through `GuardedHTTPClient`, which refuses server-side request forgery (OWASP SSRF
prevention).

Rules: https only (http when `allow_http`); the addresses a host name resolves to must be public unless
`allow_private` or the host is in `private_hosts`. The address check runs inside the connector's resolver, on the very
addresses the socket then connects to, so a DNS answer that changes between check and use (rebinding) cannot slip
through. Literal IP hosts skip resolvers, so `check_url` checks them before the request. Redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from hivegate import __version__
from hivegate.errors import ConfigError, FetchError, UnsafeURLError

__all__ = [
    "DOCUMENT_MAX_BYTES",
    "INTROSPECTION_MAX_BYTES",
    "FetchError",  # defined in hivegate.errors; re-exported here, where it is raised
    "FetchResponse",
    "GuardedHTTPClient",
    "GuardedResolver",
    "check_url",
    "is_public_address",
]

logger = logging.getLogger(__name__)

DOCUMENT_MAX_BYTES = 1024 * 1024
INTROSPECTION_MAX_BYTES = 64 * 1024
# The hints name the flag of `hivegate run` and the key of vMCP configs and manifests (both accept it).
_PRIVATE_HINT = "allow private addresses with --jwks-allow-private-ip, or jwksAllowPrivateIP in a vMCP config"
_HTTP_HINT = "allow http with --oidc-insecure-allow-http, or insecureAllowHTTP in a vMCP config"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(ip: IPAddress) -> bool:
    """False for private, loopback, link-local, multicast, reserved, unspecified and shared (CGNAT) addresses."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def check_url(url: str, *, allow_http: bool, allow_private: bool) -> URL:
    """Parse `url` and refuse a bad scheme or a literal non-public IP host with `UnsafeURLError`."""
    parsed = URL(url)
    if not parsed.absolute or not parsed.host:
        raise UnsafeURLError(f"refusing to fetch {url!r}: not an absolute URL")
    if parsed.scheme != "https" and not (parsed.scheme == "http" and allow_http):
        raise UnsafeURLError(f"refusing to fetch {parsed.with_query(None)}: only https is allowed ({_HTTP_HINT})")
    try:
        literal: IPAddress | None = ipaddress.ip_address(parsed.host)
    except ValueError:
        literal = None
    if literal is not None and not allow_private and not is_public_address(literal):
        raise UnsafeURLError(f"refusing to fetch from non-public address {literal} ({_PRIVATE_HINT})")
    return parsed


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses host names resolving to non-public addresses (at connect time)."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        private_hosts: frozenset[str] = frozenset(),
        inner: AbstractResolver | None = None,
    ) -> None:
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()
        self._allow_private = allow_private
        self._private_hosts = frozenset(h.lower() for h in private_hosts)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allow_private or host.rstrip(".").lower() in self._private_hosts:
            return results
        for result in results:
            address = ipaddress.ip_address(result["host"])
            if not is_public_address(address):
                raise UnsafeURLError(f"refusing to connect to {host}: it resolves to {address} ({_PRIVATE_HINT})")
        return results

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """A complete (size-capped) HTTP response."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON; `FetchError` when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise FetchError(f"response (HTTP {self.status}) is not JSON") from exc


class GuardedHTTPClient:
    """One lazily created `aiohttp.ClientSession` for every authentication fetch, behind the SSRF guard.

    Timeouts 5 s; response bodies capped per call; an optional CA bundle is trusted in addition to the system CAs.
    """

    def __init__(
        self,
        *,
        allow_http: bool = False,
        allow_private: bool = False,
        private_hosts: frozenset[str] = frozenset(),
        ca_bundle: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._allow_http = allow_http
        self._allow_private = allow_private
        self._private_hosts = private_hosts
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl = ssl.create_default_context()
        if ca_bundle:
            try:
                self._ssl.load_verify_locations(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"--ca-bundle: cannot load {ca_bundle}: {exc}") from exc
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use: aiohttp sessions and resolvers must be made inside the running event loop.
        if self._session is None or self._session.closed:
            resolver = GuardedResolver(allow_private=self._allow_private, private_hosts=self._private_hosts)
            connector = aiohttp.TCPConnector(resolver=resolver, ssl=self._ssl, limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": f"hivegate/{__version__}", "Accept": "application/json"},
            )
        return self._session

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> FetchResponse:
        """Send one request and read at most `max_bytes` of answer.

        Raises `UnsafeURLError` when the guard refuses the URL or its addresses, `FetchError` on network errors,
        timeouts and oversized bodies. Any status is returned as is (3xx included: redirects are not followed).
        Error messages name the URL without its query string, which may hold a token.
        """
        target = check_url(url, allow_http=self._allow_http, allow_private=self._allow_private)
        shown = target.with_query(None)
        try:
            async with self._get_session().request(
                method,
                target,
                headers=headers,
                params=params,
                data=data,
                json=json,
                allow_redirects=False,
            ) as resp:
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise FetchError(f"response from {shown} exceeds {max_bytes} bytes")
                body = bytearray()
                async for chunk in resp.content.iter_chunked(16384):
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchError(f"response from {shown} exceeds {max_bytes} bytes")
                return FetchResponse(resp.status, bytes(body), {k.lower(): v for k, v in resp.headers.items()})
        except TimeoutError as exc:
            raise FetchError(f"request to {shown} timed out") from exc
        except aiohttp.ClientError as exc:
            raise FetchError(f"request to {shown} failed: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        """Close the session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
