"""Client sessions shared by a gateway's replicas through Redis: `sessionStorage: {provider: redis}` of a
`VirtualMCPServer` (`vmcp serve`), an `MCPServer` or an `MCPRemoteProxy` (`hivegate run -f`).

`shared_sessions(storage, ttl)` opens nothing yet (the first use connects); `add_store_check` makes the store's
`ping` a readiness check, so a replica that cannot reach Redis is not sent clients it could not resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from hivegate.backends.shared_sessions import SharedSessions
from hivegate.errors import ConfigError
from hivegate.observe.health import Readiness
from hivegate.storage import StorageError, open_store

if TYPE_CHECKING:
    from hivegate.vmcp.spec.model import SessionStorage

__all__ = ["add_store_check", "shared_sessions"]


def shared_sessions(storage: SessionStorage | None, ttl: float) -> SharedSessions | None:
    """The Redis-backed session records of `storage` (None: sessions stay in this process); `ttl` seconds idle."""
    url = storage.redis_url if storage is not None else None
    if storage is None or url is None:
        return None
    if storage.password is not None:
        parts = urlsplit(url)
        if parts.password is None:
            netloc = f":{quote(storage.password, safe='')}@{parts.netloc}"
            url = urlunsplit(parts._replace(netloc=netloc))
    try:
        store = open_store("redis", url=url, key_prefix=storage.key_prefix)
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"sessionStorage: {exc}") from None
    return SharedSessions(store, ttl=ttl)


def add_store_check(readiness: Readiness, shared: SharedSessions) -> None:
    store = shared.store

    async def sessions_ready() -> str | None:
        try:
            await store.ping()
        except StorageError as exc:
            return str(exc)
        return None

    readiness.add("session store", sessions_ready)
