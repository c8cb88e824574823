"""The composition root of `hivegate run`: a gateway for one MCP server from a `RunConfig` (authenticator, backend,
endpoints); what it shares with `hivegate vmcp serve` is built by the rest of `hivegate.compose`."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hivegate.asgi.app import Endpoint, Gateway, GatewaySettings
from hivegate.asgi.diagnostics import DiagnosticsApp, readiness_endpoint
from hivegate.asgi.legacy_sse import LegacySSEFrontend
from hivegate.asgi.reverse import ReverseProxy
from hivegate.asgi.reverse_sessions import SessionTable
from hivegate.asgi.streamable import SessionFrontend, StreamableLimits
from hivegate.asgi.types import ASGIApp
from hivegate.authn.authenticators import introspects
from hivegate.authz.gate import McpGate
from hivegate.backends.registry import SessionRegistry
from hivegate.backends.stdio import StdioTransport
from hivegate.backends.stdio_pool import StdioPool, sharing_name
from hivegate.backends.transport import Transport, TransportFactory
from hivegate.compose.incoming import Incoming, incoming
from hivegate.compose.lifecycle import Lifecycle
from hivegate.compose.operations import Tracing
from hivegate.compose.operations import observers as build_observers
from hivegate.compose.policies import policy_gate
from hivegate.compose.shared import add_store_check, shared_sessions
from hivegate.config.run import RunConfig
from hivegate.errors import ConfigError
from hivegate.observe.audit import AuditConfig, load_audit_config
from hivegate.observe.exchange import Observer
from hivegate.observe.health import Readiness, tcp_reachable
from hivegate.observe.metrics import Metrics
from hivegate.pipeline.limits import CallerLimits

if TYPE_CHECKING:
    from hivegate.authserver.build import EmbeddedAuthServer
    from hivegate.outgoing.credentials import Credentials

__all__ = ["build_gateway"]

logger = logging.getLogger("hivegate")


def _credentials(cfg: RunConfig, embedded: EmbeddedAuthServer | None, lifecycle: Lifecycle) -> Credentials | None:
    """The remote backend's own credential (None: none): headers of the gateway's own (`--remote-forward-headers*`),
    the caller's upstream token (`--upstream-inject`) or a token exchanged per caller (`--token-exchange-*`)."""
    from hivegate.outgoing.credentials import StaticHeader, UpstreamToken

    if cfg.forward_headers:
        header = StaticHeader(*cfg.forward_headers[0])
        header.fixed.update(cfg.forward_headers[1:])  # all the headers, in one credential
        return header
    if cfg.upstream_inject is not None:
        if embedded is None:
            raise ConfigError("--upstream-inject needs --auth-server-config")
        if cfg.upstream_inject not in embedded.server.upstream_names:
            known = ", ".join(embedded.server.upstream_names)
            raise ConfigError(
                f"--upstream-inject: --auth-server-config has no upstream provider {cfg.upstream_inject!r} "
                f"(configured: {known})"
            )
        return UpstreamToken(embedded.server.upstream_tokens, cfg.upstream_inject)
    if cfg.token_exchange is None:
        return None
    from hivegate.httpclient.guard import GuardedHTTPClient
    from hivegate.httpclient.loopback import uses_http
    from hivegate.vmcp.outgoing import exchanged_token

    http = GuardedHTTPClient(allow_http=uses_http([cfg.token_exchange.token_url]), allow_private=True, timeout=10.0)
    lifecycle.on_shutdown(http.aclose)
    where = "--token-exchange-subject-provider" if cfg.token_exchange.subject_provider_name else "--token-exchange-url"
    return exchanged_token(cfg.token_exchange, embedded, http, where)


def _factory(cfg: RunConfig, credentials: Credentials | None = None) -> TransportFactory:
    if cfg.transport == "stdio" and cfg.attach is not None:
        from hivegate.backends.attach import ApiAccess, AttachTarget, AttachTransport

        target, access, name = AttachTarget.parse(cfg.attach, "attach"), ApiAccess.from_environment(), cfg.name
        return lambda: AttachTransport(target, access, name=name)
    if cfg.transport == "stdio" and cfg.container is not None:
        from hivegate.compose.run_container import stdio_factory

        return stdio_factory(cfg, cfg.container)
    if cfg.transport == "stdio":
        command, env, name = cfg.command, cfg.env, cfg.name

        def stdio() -> Transport:
            return StdioTransport(command, env=env or None, name=name)

        return stdio
    from hivegate.backends.remote import SseClientTransport, StreamableClientTransport

    url, timeout, name = cfg.url, cfg.request_timeout, cfg.name
    assert url is not None
    if cfg.transport == "sse":
        if credentials is not None:
            raise ConfigError("--token-exchange-url: a legacy SSE backend is not supported; use streamable-http")
        return lambda: SseClientTransport(url, timeout=timeout)
    return lambda: StreamableClientTransport(url, timeout=timeout, credentials=credentials, name=name)


def _stdio_sharing(
    cfg: RunConfig, factory: TransportFactory, lifecycle: Lifecycle, idle_stopped: Callable[[], None] | None
) -> TransportFactory:
    """The sessions' factory for `--stdio-sharing` (a pool's channels, or `factory` itself per session)."""
    idle = f"stopped after {cfg.stdio_idle_timeout:g} s idle" if cfg.stdio_idle_timeout else "never stopped when idle"
    lifecycle.summary.append(f"stdio: processes {sharing_name(cfg.stdio_sharing)}, {idle}")
    if cfg.stdio_sharing == 0:
        return factory
    pool = StdioPool(factory, size=cfg.stdio_sharing, name=cfg.name, linger=cfg.stdio_idle_timeout,
                     on_idle_stop=idle_stopped)  # fmt: skip
    lifecycle.on_shutdown(pool.close)  # after the sessions on it
    return pool.channel


def build_gateway(cfg: RunConfig, *, public: dict[str, ASGIApp] | None = None) -> Gateway:
    """The gateway for `cfg`; `public` adds unauthenticated routes (e.g. the demo's JWKS)."""
    lifecycle = Lifecycle()  # shutdown in reverse order of construction: what is built first is closed last
    public = dict(public or {})
    prefixes: dict[str, ASGIApp] = {}
    metrics = Metrics() if cfg.diagnostics_port is not None else None
    observers = _observers(cfg, lifecycle, metrics)
    auth_server = cfg.auth_server
    if auth_server is None and cfg.auth_server_config is not None:
        from hivegate.authserver.settings import load_auth_server_config

        auth_server = load_auth_server_config(cfg.auth_server_config)
    entry = incoming(lifecycle, oidc=cfg.auth, auth_server=auth_server, server_name=cfg.name, mcp_path=cfg.mcp_path,
                     metrics=metrics, scopes=cfg.auth.scopes)  # fmt: skip
    authenticator, resource_url, embedded = entry.authenticator, entry.resource_url, entry.embedded
    public.update(entry.routes)
    prefixes.update(entry.prefixes)
    credentials = _credentials(cfg, embedded, lifecycle)
    registry: SessionRegistry | None = None
    gate: McpGate | None = None
    if cfg.authz_config is not None or cfg.authz is not None or cfg.tools:
        from hivegate.authz.store import PolicySource, config_source, file_source
        from hivegate.authz.tool_filter import tool_filter_source

        source: PolicySource | None = None
        if cfg.authz_config is not None:
            source = file_source(cfg.authz_config)
        elif cfg.authz is not None:
            source = config_source(cfg.authz, cfg.authz_source)
        if cfg.tools:
            source = tool_filter_source(source, cfg.tools)
        assert source is not None
        gate = policy_gate(source, cfg.name, lifecycle, watch=cfg.authz_config is not None)
    container_ready = None
    if cfg.container is not None:
        from hivegate.compose.run_container import container_backend

        cfg, container_ready = container_backend(cfg, lifecycle)  # removes the containers after the sessions end
    endpoints: dict[str, Endpoint]
    shared = None
    if cfg.transport == "streamable-http" and cfg.proxy_mode == "streamable-http":
        assert cfg.url is not None
        proxy = ReverseProxy(
            cfg.url,
            request_timeout=cfg.request_timeout,
            max_body=cfg.max_body,
            name=cfg.name,
            gate=gate,
            credentials=credentials,
            sessions=SessionTable(max_sessions=cfg.max_sessions, max_per_owner=cfg.max_sessions_per_user),
            stream_idle_timeout=cfg.stream_idle_timeout,
        )
        lifecycle.on_shutdown(proxy.aclose)
        endpoints = {"/mcp": proxy.handle}
    else:
        factory, idle = _factory(cfg, credentials), 0.0
        idle_stopped = metrics.stdio_idle_stop if metrics is not None else None
        if cfg.transport == "stdio" and cfg.attach is None:  # an attached pod is shared already, and never stopped
            factory, idle = _stdio_sharing(cfg, factory, lifecycle, idle_stopped), cfg.stdio_idle_timeout
        registry = SessionRegistry(
            ttl=cfg.session_ttl,
            max_sessions=cfg.max_sessions,
            max_per_owner=cfg.max_sessions_per_user,
            on_restart=metrics.backend_restarted if metrics is not None else None,
            output_hint=f"hivegate logs {cfg.name}" if cfg.background else None,
            idle_timeout=idle,
            on_idle_stop=idle_stopped if cfg.stdio_sharing == 0 else None,  # shared: the pool counts its processes
        )
        lifecycle.on_shutdown(registry.close)  # first to close: ending sessions still audits and logs
        if cfg.proxy_mode == "streamable-http":
            shared = shared_sessions(cfg.session_storage, cfg.session_ttl)
            if shared is not None:
                lifecycle.on_shutdown(shared.aclose)
                lifecycle.summary.append(f"sessions: shared in Redis (TTL {cfg.session_ttl:g} s)")
            front = SessionFrontend(
                name=cfg.name,
                factory=factory,
                registry=registry,
                request_timeout=cfg.request_timeout,
                limits=StreamableLimits(max_body=cfg.max_body, stream_idle=cfg.stream_idle_timeout),
                gate=gate,
                shared=shared,
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
    diagnostics = _diagnostics(cfg, lifecycle, registry, entry, gate, metrics, container_ready)
    if shared is not None:
        add_store_check(diagnostics.readiness, shared)
    public["/readyz"] = readiness_endpoint(diagnostics.readiness)
    lines = [*_auth_summary(cfg, resource_url, embedded), *lifecycle.summary]
    readiness = diagnostics.readiness

    async def first_check() -> None:  # the start-up summary says whether the backend is there
        results = await readiness.results()
        lines.append("health: " + ", ".join(f"{r.name} {r.detail}" for r in results))

    settings = GatewaySettings(
        endpoints=endpoints,
        public=public,
        public_prefixes=prefixes,
        mcp_path=cfg.mcp_path,
        resource_url=resource_url,
        allowed_origins=cfg.allowed_origins,
        loopback_only=cfg.loopback,
        on_startup=tuple(lifecycle.startup),
        on_shutdown=(lifecycle.shutdown,),
        after_listening=(first_check,),
        observers=observers,
        diagnostics=diagnostics.app if cfg.diagnostics_port is not None else None,
        diagnostics_port=cfg.diagnostics_port,
        summary=lines,  # completed by `first_check` before it is printed
        limits=CallerLimits(max_requests=cfg.max_requests_per_user, max_streams=cfg.max_streams_per_user),
    )
    return Gateway(settings, authenticator)


@dataclass
class _Diagnostics:
    readiness: Readiness
    app: ASGIApp


def _observers(cfg: RunConfig, lifecycle: Lifecycle, metrics: Metrics | None) -> list[Observer]:
    """Audit, metrics and traces for `cfg` (an unwritable audit file fails here, at start-up). Built before
    everything else, so closed after everything else."""
    audit = (load_audit_config(cfg.audit_config) if cfg.audit_config else AuditConfig()) if cfg.enable_audit else None
    tracing = None
    if cfg.otel_endpoint is not None:
        tracing = Tracing(cfg.otel_endpoint, cfg.otel_service_name or cfg.name, cfg.otel_sampling_rate,
                          dict(cfg.otel_headers))  # fmt: skip
    return build_observers(
        lifecycle, component=cfg.name, transport=cfg.proxy_mode, audit=audit, metrics=metrics, tracing=tracing
    )


def _diagnostics(
    cfg: RunConfig,
    lifecycle: Lifecycle,
    registry: SessionRegistry | None,
    entry: Incoming,
    gate: McpGate | None,
    metrics: Metrics | None,
    container_ready: Callable[[], Awaitable[str | None]] | None,
) -> _Diagnostics:
    """The readiness checks and the diagnostics app (metrics, `/readyz`) for `cfg`."""
    if metrics is not None and registry is not None:
        sessions = registry
        metrics.gauge("hivegate_active_sessions", "Open client sessions", lambda: len(sessions))
    if metrics is not None and cfg.transport == "stdio" and cfg.attach is None:
        metrics.gauge("hivegate_stdio_processes", "Stdio server processes running", lambda: StdioTransport.running)
    readiness = Readiness()
    if container_ready is not None:
        readiness.add("backend", container_ready)
    elif cfg.attach is not None:
        from hivegate.backends.attach import ApiAccess, AttachTarget, pod_ready

        target = AttachTarget.parse(cfg.attach, "attach")
        readiness.add("backend", lambda: pod_ready(target, ApiAccess.from_environment()))
    elif cfg.transport == "stdio":
        program = cfg.command[0] if cfg.command else ""

        async def command_found() -> str | None:
            return None if shutil.which(program) else f"command {program!r} not found"

        readiness.add("backend", command_found)
    else:
        parts = urlsplit(cfg.url or "")
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        readiness.add("backend", lambda: tcp_reachable(host, port))
    entry.add_checks(readiness)
    if gate is not None:
        policies = gate

        async def policies_loaded() -> str | None:
            return None if policies.policy_count >= 0 else "no policies"

        readiness.add("authz policies", policies_loaded)
        if cfg.authz_config is not None or cfg.authz is not None:
            origin = cfg.authz_config or cfg.authz_source
            lifecycle.summary.append(f"authz: {gate.policy_count} Cedar policies from {origin}")
        if cfg.tools:
            lifecycle.summary.append(f"tools: only {', '.join(cfg.tools)} (--tools)")
    return _Diagnostics(readiness, DiagnosticsApp(metrics, readiness))


def _auth_summary(cfg: RunConfig, resource_url: str | None, embedded: EmbeddedAuthServer | None) -> list[str]:
    if embedded is not None:
        return [f"auth: embedded authorization server {embedded.server.issuer} (audience {embedded.resource})"]
    auth = cfg.auth
    if auth.mode == "oidc":
        lines = [f"auth: OIDC issuer {auth.issuer}, audience {auth.audience}"]
        if auth.introspection_url:
            lines.append(f"auth: opaque tokens introspected at {auth.introspection_url}")
        elif introspects(auth.with_env_secret()):
            lines.append("auth: opaque tokens introspected at the issuer's introspection_endpoint (discovery)")
        return lines
    return [f"auth: {auth.mode} (no token required)"]
