"""OAuth clients of the authorization server: how they are described and looked up."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["AuthMethod", "Client", "ClientSource", "ClientStore"]

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post"]
ClientSource = Literal["static", "dynamic", "metadata"]


@dataclass(frozen=True, slots=True)
class Client:
    """A registered client. `secret_hash` is SHA-256 (hex) of the client secret for confidential clients."""

    client_id: str
    redirect_uris: tuple[str, ...]
    source: ClientSource
    client_name: str = ""
    token_endpoint_auth_method: AuthMethod = "none"
    secret_hash: str | None = field(default=None, repr=False)
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    scope: str | None = None
    issued_at: int = 0
    expires_at: int | None = None

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    def secret_matches(self, secret: str) -> bool:
        """Constant-time check of a presented client secret."""
        if self.secret_hash is None:
            return False
        presented = hashlib.sha256(secret.encode()).hexdigest()
        return hmac.compare_digest(presented, self.secret_hash)

    def to_record(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uris": list(self.redirect_uris),
            "source": self.source,
            "client_name": self.client_name,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "secret_hash": self.secret_hash,
            "grant_types": list(self.grant_types),
            "scope": self.scope,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Client:
        return cls(
            client_id=str(record["client_id"]),
            redirect_uris=tuple(record["redirect_uris"]),
            source=record["source"],
            client_name=str(record.get("client_name") or ""),
            token_endpoint_auth_method=record.get("token_endpoint_auth_method") or "none",
            secret_hash=record.get("secret_hash"),
            grant_types=tuple(record.get("grant_types") or ("authorization_code", "refresh_token")),
            scope=record.get("scope"),
            issued_at=int(record.get("issued_at") or 0),
            expires_at=record.get("expires_at"),
        )


class ClientStore(Protocol):
    """Finds clients (static, registered, or by metadata document) and registers new ones."""

    async def get(self, client_id: str) -> Client | None:
        """The client, or None when unknown (or its metadata document cannot be had)."""
        ...

    async def register(self, metadata: Any, *, remote: str) -> tuple[Client, dict[str, Any]]:
        """RFC 7591 registration from the request body (`remote` = caller address, for rate limiting): the client and
        the registration response (incl. `client_secret` once, for confidential clients). Raises `OAuthError`."""
        ...
