"""What the authorization server needs from an upstream identity provider, whatever its kind (`oidc`, `oauth2`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hivegate.errors import HivegateError

__all__ = ["UpstreamError", "UpstreamIdentity", "UpstreamProvider", "UpstreamTokens"]


class UpstreamError(HivegateError):
    """The upstream refused or failed. `error` is an OAuth error code (the upstream's, or `server_error` /
    `temporarily_unavailable` for network trouble); `description` is one line fit to show a user (no tokens)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class UpstreamTokens:
    """Tokens from the upstream's token endpoint. `expires_at` is epoch seconds (None: the upstream did not say)."""

    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scope: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "refresh_token": self.refresh_token,
            "id_token": self.id_token,
            "expires_at": self.expires_at,
            "scope": self.scope,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> UpstreamTokens:
        return cls(
            access_token=str(record["access_token"]),
            token_type=str(record.get("token_type") or "Bearer"),
            refresh_token=record.get("refresh_token"),
            id_token=record.get("id_token"),
            expires_at=record.get("expires_at"),
            scope=record.get("scope"),
        )


@dataclass(frozen=True, slots=True)
class UpstreamIdentity:
    """Who logged in upstream. `claims` merges the ID token's claims and the userinfo answer (userinfo wins), so
    group or role claims present in only one of them are kept."""

    subject: str
    name: str | None = None
    email: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


class UpstreamProvider(Protocol):
    """One configured upstream. Stateless between calls: per-login state is returned to, and passed back by, the
    caller (which keeps it server-side)."""

    @property
    def name(self) -> str: ...

    async def authorization_url(self, *, state: str, code_challenge: str, nonce: str, redirect_uri: str) -> str:
        """Where to send the user's browser (PKCE S256 with `code_challenge`; `nonce` for OIDC ID tokens)."""
        ...

    async def exchange_code(
        self, code: str, *, code_verifier: str, nonce: str, redirect_uri: str
    ) -> tuple[UpstreamTokens, UpstreamIdentity]:
        """Redeem the upstream's authorization code; validate the ID token (oidc) and read userinfo."""
        ...

    async def refresh(self, refresh_token: str) -> tuple[UpstreamTokens, UpstreamIdentity | None]:
        """New tokens from a refresh token (the old refresh token is kept if the upstream does not rotate it), and
        who a new ID token says the user is (validated; None when the answer has none)."""
        ...

    async def aclose(self) -> None: ...
