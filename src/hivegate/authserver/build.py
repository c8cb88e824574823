"""Assemble the embedded authorization server from its config file, and the authenticator for its own tokens.

`clock_skew` (`--oidc-clock-skew`, default 60 s) is the leeway for every token the server checks: its own access
tokens on incoming requests, subject tokens of token exchange, and its upstreams' ID tokens."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from hivegate.authn.authenticators import BearerAuthenticator
from hivegate.authn.jwks import StaticKeys
from hivegate.authn.jwt import JWTVerifier
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.registration import ClientRegistry
from hivegate.authserver.registration_access import RegistrationAccess
from hivegate.authserver.service import AuthorizationServer
from hivegate.authserver.settings import AuthServerConfig, load_auth_server_config
from hivegate.authserver.upstream import build_upstream, upstream_http_client
from hivegate.config.paths import state_dir
from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.storage import open_store

__all__ = ["EmbeddedAuthServer", "build_embedded_auth_server", "embedded_auth_server"]

logger = logging.getLogger("hivegate.authserver")


@dataclass
class EmbeddedAuthServer:
    server: AuthorizationServer
    authenticator: BearerAuthenticator
    resource: str
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    registration: RegistrationAccess | None = None  # who may register clients (RFC 7591 initial access tokens)

    async def storage_ready(self) -> str | None:
        """A readiness check: None when the storage answers (`StorageError` otherwise)."""
        await self.server.ready()
        return None

    async def aclose(self) -> None:
        for close in self.closers:
            try:
                await close()
            except Exception:
                logger.exception("error closing the authorization server")


def build_embedded_auth_server(
    path: str,
    *,
    server_name: str,
    mcp_path: str,
    resource_url: str | None,
    scopes: tuple[str, ...] = (),
    clock_skew: float = 60.0,
) -> EmbeddedAuthServer:
    """Load `path` and build the server; `ConfigError` names what is wrong. Nothing is connected yet."""
    return embedded_auth_server(
        load_auth_server_config(path),
        server_name=server_name,
        mcp_path=mcp_path,
        resource_url=resource_url,
        scopes=scopes,
        clock_skew=clock_skew,
    )


def embedded_auth_server(
    cfg: AuthServerConfig,
    *,
    server_name: str,
    mcp_path: str,
    resource_url: str | None,
    scopes: tuple[str, ...] = (),
    clock_skew: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> EmbeddedAuthServer:
    """The server for an already loaded `cfg` (e.g. a vMCP config's `authServerConfig`); `clock` for tests."""
    resource = resource_url or f"{cfg.issuer}{mcp_path}"
    audiences = cfg.allowed_audiences or (resource,)
    keys = SigningKeys.from_pems(cfg.signing_keys, where=f"{cfg.where}.signingKeySecretRefs")  # errors name the file
    hmac_keys = HMACKeys.from_config(cfg.hmac_keys)
    if keys.ephemeral or hmac_keys.ephemeral:
        logger.warning(
            "authserver: no %s configured: using ephemeral keys; every token it issued dies when hivegate stops",
            " and ".join(k for k, e in (("signing keys", keys.ephemeral), ("HMAC keys", hmac_keys.ephemeral)) if e),
        )
    store = open_store(
        cfg.storage.type,
        path=cfg.storage.path or str(_default_db(server_name)),
        url=cfg.storage.redis_url,
        key_prefix=cfg.storage.key_prefix,
    )
    upstream_http = upstream_http_client(cfg.upstreams)
    metadata_http = GuardedHTTPClient()  # client metadata documents: public https only (user input: SSRF)
    clients = ClientRegistry(store, static=cfg.clients, scopes_supported=cfg.scopes_supported, http=metadata_http)
    upstreams = [build_upstream(u, upstream_http, clock_skew=clock_skew) for u in cfg.upstreams]
    server = AuthorizationServer(
        cfg,
        keys=keys,
        hmac_keys=hmac_keys,
        store=store,
        clients=clients,
        upstreams=upstreams,
        audiences=audiences,
        clock=clock,
        clock_skew=clock_skew,
        name=server_name,
    )
    own_keys = StaticKeys(keys.jwks())
    verifier = JWTVerifier(own_keys, issuer=cfg.issuer, audience=resource, clock_skew=clock_skew, clock=clock)
    authenticator = BearerAuthenticator(
        jwt_verifier=verifier,
        introspector=None,
        realm=cfg.issuer,
        scopes=scopes or _advertised_scopes(cfg),
        authorization_servers=(cfg.issuer,),
        revoked=server.token_revoked,
        keys_ready=own_keys.ready,
    )
    closers: list[Callable[[], Awaitable[None]]] = [upstream_http.aclose, metadata_http.aclose, store.aclose]
    registration = RegistrationAccess(cfg.registration, verify=authenticator.authenticate)
    return EmbeddedAuthServer(server, authenticator, resource, closers, registration)


def _advertised_scopes(cfg: AuthServerConfig) -> tuple[str, ...]:
    return tuple(cfg.scopes_supported)


def _default_db(server_name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in server_name) or "default"
    return state_dir("authserver") / f"{safe}.db"
