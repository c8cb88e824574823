"""Incoming authentication for a gateway, built the same way for `run` and `vmcp serve`: the embedded authorization
server (its routes, its authenticator, its store's readiness) or an authenticator for the configured OIDC issuer,
introspection endpoint or local mode, with the readiness checks that go with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hivegate.authn.authenticators import build_authenticator
from hivegate.authn.oidc_config import OIDCConfig
from hivegate.compose.lifecycle import Lifecycle
from hivegate.core.ports import Authenticator
from hivegate.observe.health import Readiness
from hivegate.observe.metrics import Metrics

if TYPE_CHECKING:
    from hivegate.asgi.types import ASGIApp
    from hivegate.authserver.build import EmbeddedAuthServer
    from hivegate.authserver.settings import AuthServerConfig

__all__ = ["Incoming", "incoming"]


@dataclass
class Incoming:
    """Who a gateway lets in: its authenticator, the resource URL tokens are for, the embedded authorization server
    when there is one, and the routes that server serves (unauthenticated, beside the MCP endpoint)."""

    authenticator: Authenticator
    resource_url: str | None
    embedded: EmbeddedAuthServer | None = None
    routes: dict[str, ASGIApp] = field(default_factory=dict)
    prefixes: dict[str, ASGIApp] = field(default_factory=dict)

    def add_checks(self, readiness: Readiness) -> None:
        """The readiness checks of incoming authentication: the keys JWTs are verified with, the server's store."""
        if self.authenticator.keys_ready is not None:  # None: no JWT is verified (introspection, local, anonymous)
            readiness.add("keys", self.authenticator.keys_ready)
        if self.embedded is not None:
            readiness.add("authserver storage", self.embedded.storage_ready)


def incoming(
    lifecycle: Lifecycle,
    *,
    oidc: OIDCConfig,
    auth_server: AuthServerConfig | None,
    server_name: str,
    mcp_path: str,
    metrics: Metrics | None,
    scopes: tuple[str, ...] = (),
) -> Incoming:
    """The embedded authorization server for `auth_server`, else an authenticator for `oidc`; closed at shutdown.
    `oidc.clock_skew` applies to the embedded server's tokens too."""
    if auth_server is None:
        authenticator = build_authenticator(oidc)
        lifecycle.on_shutdown(authenticator.aclose)
        return Incoming(authenticator, oidc.resource_url)
    from hivegate.asgi.authserver import AuthServerRoutes
    from hivegate.authserver.build import embedded_auth_server

    embedded = embedded_auth_server(
        auth_server,
        server_name=server_name,
        mcp_path=mcp_path,
        resource_url=oidc.resource_url,
        scopes=scopes,
        clock_skew=oidc.clock_skew,
    )
    lifecycle.on_shutdown(embedded.aclose)
    lifecycle.on_shutdown(embedded.authenticator.aclose)
    on_grant = metrics.grant if metrics is not None else None
    routes = AuthServerRoutes(embedded.server, on_grant=on_grant, registration=embedded.registration)
    return Incoming(embedded.authenticator, embedded.resource, embedded, routes.routes(), routes.prefixes())
