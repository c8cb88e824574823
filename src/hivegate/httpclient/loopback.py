"""The one loopback rule: which hosts count as this machine, and which URLs may use plain http.

Plain http is accepted only where the bytes never leave the machine: `localhost`, any address in 127.0.0.0/8, `::1`,
and IPv4-mapped forms of those (`::ffff:127.0.0.1`). A name that merely ends in `.localhost`, or any other name that
happens to resolve to 127.0.0.1, is not loopback here: its resolution is not ours to trust.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "is_secure_transport", "uses_http"]


def is_loopback_host(host: str | None) -> bool:
    """Whether `host` (a host name or IP literal, brackets allowed) names this machine's loopback interface."""
    return _is_loopback(host) if host else False


@functools.lru_cache(maxsize=256)  # asked per request (the Host header): parsing an address costs ~5 µs
def _is_loopback(host: str) -> bool:
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_secure_transport(url: str) -> bool:
    """Whether `url` is https, or http to a loopback host (what may carry credentials)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))


def uses_http(urls: Iterable[str | None]) -> bool:
    """Whether any of the configured `urls` is plain http (a client for them must then allow it)."""
    return any(url is not None and urlsplit(url).scheme == "http" for url in urls)
