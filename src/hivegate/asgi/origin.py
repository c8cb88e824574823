"""DNS-rebinding defence: `Host` and `Origin` validation (MCP spec, "Transports", security warning)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from hivegate.httpclient.loopback import is_loopback_host

__all__ = ["OriginPolicy"]


def _hostname(authority: str) -> str:
    """Host part of a `Host` header value (`name`, `name:port`, `[v6]:port`)."""
    if authority.startswith("["):
        return authority[1 : authority.find("]")].lower() if "]" in authority else authority.lower()
    return authority.rsplit(":", 1)[0].lower() if authority.count(":") == 1 else authority.lower()


class OriginPolicy:
    """Origins in `allowed_origins` pass; with none configured, loopback origins and same-host origins pass.

    When the gateway listens on a loopback address, the `Host` header must name a loopback host too, so a page on
    an attacker's domain that re-resolves to 127.0.0.1 cannot reach the gateway.
    """

    def __init__(self, allowed_origins: Iterable[str], *, loopback_only: bool) -> None:
        self._allowed = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self._loopback_only = loopback_only

    def host_ok(self, host: str | None) -> bool:
        if not self._loopback_only or host is None:
            return True
        return is_loopback_host(_hostname(host))

    def origin_ok(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True
        normalized = origin.rstrip("/").lower()
        if normalized in self._allowed or "*" in self._allowed:
            return True
        if self._allowed:
            return False
        name = (urlsplit(normalized).hostname or "").lower()
        if is_loopback_host(name):
            return True
        return host is not None and name == _hostname(host)
