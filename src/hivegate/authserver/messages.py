"""What passes between the ASGI layer (`hivegate.asgi.authserver`) and the transport-free authorization server: the
request's form or query parameters (`Params`), and what a browser-facing endpoint answers: a `Redirect`, an
`ErrorPage` shown instead of redirecting (to a client or redirect URI not trusted yet), or the `Consent` page to
show. An `ErrorPage` says what the person can do next (`Advice`) and carries a short random `reference`, shown on
the page and logged with the error, so an administrator can find what happened from what the user reports.
`hivegate.authserver.service` exports them all; they live here so that the login flow and the grants can use them
without importing the server that composes them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hivegate.authserver.clients import Client
from hivegate.authserver.errors import OAuthError

__all__ = ["MAX_PARAM", "Advice", "Consent", "ErrorPage", "Params", "Redirect", "new_reference"]

MAX_PARAM = 4096

# what the person can do about an error page: start again from the application; finish in the browser that
# started the sign-in; or tell the application's developer or this server's administrator (the app is at fault)
Advice = Literal["restart", "same-browser", "report-app", "unknown-app"]


def new_reference() -> str:
    """A short random id naming one error occurrence (8 hex digits: not a secret, only unique enough to search)."""
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class Redirect:
    url: str


@dataclass(frozen=True, slots=True)
class ErrorPage:
    status: int
    title: str
    message: str
    advice: Advice = "restart"
    client_id: str = ""  # the client the sign-in was for, when known (logged, never shown)
    reference: str = field(default_factory=new_reference)


@dataclass(frozen=True, slots=True)
class Consent:
    login: str
    csrf: str
    client: Client
    redirect_uri: str
    upstream: str
    server_name: str  # this MCP server's name (e.g. `--name`); the resource's host when it has none
    resource: str  # the resource (RFC 8707) the token will be for: this MCP server's URL
    scopes: tuple[str, ...]


class Params:
    """Form or query parameters. RFC 6749 3.1: a parameter may not repeat (`one()` raises `OAuthError`), except
    `resource`, which RFC 8707 allows several times (we accept one: `invalid_target` otherwise)."""

    def __init__(self, values: Mapping[str, Sequence[str]]) -> None:
        self._values = values

    @classmethod
    def of(cls, **single: str) -> Params:
        return cls({k: [v] for k, v in single.items()})

    def one(self, name: str) -> str:
        values = self._values.get(name, ())
        if len(values) > 1:
            raise OAuthError("invalid_request", f"parameter {name} is repeated")
        value = values[0] if values else ""
        if len(value) > MAX_PARAM:
            raise OAuthError("invalid_request", f"parameter {name} is too long")
        return value

    def many(self, name: str) -> Sequence[str]:
        return self._values.get(name, ())

    def __contains__(self, name: str) -> bool:
        return name in self._values
