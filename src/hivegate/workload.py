"""Assemble a gateway for one MCP server from a `RunConfig`: authenticator, backend, endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from hivegate.asgi.app import Endpoint, Gateway, GatewaySettings
from hivegate.asgi.legacy_sse import LegacySSEFrontend
from hivegate.asgi.reverse import ReverseProxy
from hivegate.asgi.streamable import SessionFrontend, StreamableLimits
from hivegate.asgi.types import ASGIApp
from hivegate.authn.authenticators import build_authenticator
from hivegate.authz.gate import McpGate
from hivegate.backends.registry import SessionRegistry
from hivegate.backends.stdio import StdioTransport
from hivegate.backends.transport import Transport, TransportFactory
from hivegate.config.run import RunConfig
from hivegate.core.ports import Authenticator

__all__ = ["build_gateway"]

logger = logging.getLogger("hivegate")


def _factory(cfg: RunConfig) -> TransportFactory:
    if cfg.transport == "stdio":
        command, env, name = cfg.command, cfg.env, cfg.name

        def stdio() -> Transport:
            return StdioTransport(command, env=env or None, name=name)

        return stdio
    from hivegate.backends.remote import SseClientTransport, StreamableClientTransport

    url, timeout = cfg.url, cfg.request_timeout
    assert url is not None
    if cfg.transport == "sse":
        return lambda: SseClientTransport(url, timeout=timeout)
    return lambda: StreamableClientTransport(url, timeout=timeout)


def build_gateway(cfg: RunConfig, *, public: dict[str, ASGIApp] | None = None) -> Gateway:
    """The gateway for `cfg`; `public` adds unauthenticated routes (e.g. the demo's JWKS)."""
    startup: list[Callable[[], Awaitable[None]]] = []
    shutdown: list[Callable[[], Awaitable[None]]] = []
    public = dict(public or {})
    prefixes: dict[str, ASGIApp] = {}
    authenticator: Authenticator
    resource_url = cfg.auth.resource_url
    if cfg.auth_server_config is not None:
        from hivegate.asgi.authserver import AuthServerRoutes
        from hivegate.authserver.build import build_embedded_auth_server

        embedded = build_embedded_auth_server(
            cfg.auth_server_config,
            server_name=cfg.name,
            mcp_path=cfg.mcp_path,
            resource_url=cfg.auth.resource_url,
            scopes=cfg.auth.scopes,
        )
        authenticator, resource_url = embedded.authenticator, embedded.resource
        routes = AuthServerRoutes(embedded.server)
        public.update(routes.routes())
        prefixes.update(routes.prefixes())
        shutdown.append(embedded.aclose)
    else:
        authenticator = build_authenticator(cfg.auth)
    shutdown.append(authenticator.aclose)
    gate: McpGate | None = None
    if cfg.authz_config is not None:
        gate = _policy_gate(cfg.authz_config, cfg.name, startup, shutdown)
    endpoints: dict[str, Endpoint]
    if cfg.transport == "streamable-http" and cfg.proxy_mode == "streamable-http":
        assert cfg.url is not None
        proxy = ReverseProxy(
            cfg.url, request_timeout=cfg.request_timeout, max_body=cfg.max_body, name=cfg.name, gate=gate
        )
        shutdown.append(proxy.aclose)
        endpoints = {"/mcp": proxy.handle}
    else:
        registry = SessionRegistry(
            ttl=cfg.session_ttl, max_sessions=cfg.max_sessions, max_per_owner=cfg.max_sessions_per_user
        )
        shutdown.insert(0, registry.close)
        factory = _factory(cfg)
        if cfg.proxy_mode == "streamable-http":
            front = SessionFrontend(
                name=cfg.name,
                factory=factory,
                registry=registry,
                request_timeout=cfg.request_timeout,
                limits=StreamableLimits(max_body=cfg.max_body),
                gate=gate,
            )
            endpoints = {"/mcp": front.handle}
        else:
            legacy = LegacySSEFrontend(
                name=cfg.name,
                factory=factory,
                registry=registry,
                request_timeout=cfg.request_timeout,
                max_body=cfg.max_body,
                gate=gate,
            )
            endpoints = {"/sse": legacy.handle_stream, "/messages": legacy.handle_message}
    settings = GatewaySettings(
        endpoints=endpoints,
        public=public,
        public_prefixes=prefixes,
        mcp_path=cfg.mcp_path,
        resource_url=resource_url,
        allowed_origins=cfg.allowed_origins,
        loopback_only=cfg.loopback,
        on_startup=tuple(startup),
        on_shutdown=tuple(shutdown),
    )
    return Gateway(settings, authenticator)


def _policy_gate(
    path: str,
    server_name: str,
    startup: list[Callable[[], Awaitable[None]]],
    shutdown: list[Callable[[], Awaitable[None]]],
) -> McpGate:
    """Load the policies (a broken file stops start-up) and keep them current: SIGHUP or a changed file reloads."""
    from hivegate.authz.store import PolicyStore

    store = PolicyStore(path, server_name)
    tasks: set[asyncio.Future[object]] = set()

    def spawn(coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def start() -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # no signals off the main thread
            loop.add_signal_handler(signal.SIGHUP, lambda: spawn(store.reload(reason="SIGHUP")))
        spawn(store.watch())

    async def stop() -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    startup.append(start)
    shutdown.append(stop)
    logger.info("authz: %d Cedar policies loaded from %s", store.current.policy_count, path)
    return McpGate(store)
