"""Ports: the Protocols that pluggable parts implement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from hivegate.core.principal import Principal

__all__ = ["Authenticator", "TokenVerifier"]


class TokenVerifier(Protocol):
    """Checks one bearer token; raises `AuthenticationError("invalid_token", ...)` when it is not valid."""

    async def verify(self, token: str) -> Principal: ...


class Authenticator(Protocol):
    """Turns the raw `Authorization` header (or its absence) into a `Principal`.

    Raises `AuthenticationError` with the RFC 6750 error code on failure.
    `realm` and `scopes` feed the `WWW-Authenticate` challenge; `authorization_servers` feeds RFC 9728 metadata.
    """

    requires_token: bool
    realm: str | None
    scopes: tuple[str, ...]
    authorization_servers: tuple[str, ...]
    # the `keys` readiness check: the keys JWTs are verified with are loaded (None: no such keys in this mode)
    keys_ready: Callable[[], Awaitable[str | None]] | None

    async def authenticate(self, authorization: str | None) -> Principal: ...

    async def aclose(self) -> None: ...
