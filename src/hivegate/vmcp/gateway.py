"""Assemble a virtual MCP server from a `VMCPConfig`: backends, authentication, Cedar, operations, endpoints.

The MCP endpoint is the same `SessionFrontend` as `hivegate run`'s, over a `VirtualTransport` per client session.
Beside it, unauthenticated: `/health` and `/ping` (alive), `/readyz` (at least one backend healthy, all of them under
`partialFailureMode: fail`; the keys that incoming JWTs, and those of backends with their own `oidcConfig`, are
verified with loaded; the stores reachable), `/status` and `/api/backends/health` (each backend's state, no URLs or
commands), and `/metrics` (readiness checks included as `hivegate_check_up`) when
`telemetry.enablePrometheusMetricsPath` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hivegate import __version__
from hivegate.asgi.app import Gateway, GatewaySettings
from hivegate.asgi.diagnostics import readiness_endpoint
from hivegate.asgi.http import send_bytes, send_json
from hivegate.asgi.streamable import SessionFrontend
from hivegate.asgi.types import ASGIApp, Receive, Scope, Send
from hivegate.authz.gate import McpGate
from hivegate.authz.policy_config import AuthzConfig
from hivegate.backends.registry import SessionRegistry
from hivegate.backends.stdio import StdioTransport
from hivegate.backends.stdio_pool import StdioPool, sharing_name
from hivegate.backends.transport import Transport, TransportFactory
from hivegate.compose.incoming import incoming
from hivegate.compose.lifecycle import Lifecycle
from hivegate.compose.operations import Tracing
from hivegate.compose.operations import observers as build_observers
from hivegate.compose.policies import policy_gate
from hivegate.compose.shared import add_store_check, shared_sessions
from hivegate.errors import ConfigError
from hivegate.httpclient.loopback import is_loopback_host
from hivegate.observe.health import Readiness
from hivegate.observe.metrics import CONTENT_TYPE, Metrics
from hivegate.outgoing.credentials import Credentials, NoCredentials, StaticHeader
from hivegate.vmcp.launch import launched_for
from hivegate.vmcp.outgoing import backend_credentials, sts_http_client
from hivegate.vmcp.ownproxy import OwnProxy
from hivegate.vmcp.policy_names import PolicyNames
from hivegate.vmcp.pool import BackendPool
from hivegate.vmcp.session import VirtualTransport
from hivegate.vmcp.spec import BackendConfig, VMCPConfig
from hivegate.vmcp.spec.checks import verified_by_vmcp

if TYPE_CHECKING:
    pass

__all__ = ["VirtualServer", "build_virtual_server"]

logger = logging.getLogger("hivegate.vmcp")

MAX_SESSIONS = 1000
MAX_SESSIONS_PER_USER = 50


@dataclass
class VirtualServer:
    gateway: Gateway
    pool: BackendPool
    summary: list[str] = field(default_factory=list)


def backend_factory(
    backend: BackendConfig, timeout: float, url: str | None = None, credentials: Credentials | None = None
) -> TransportFactory:
    """How to reach one backend: a stdio child, or an HTTP server (Streamable HTTP or SSE) at `url` (default: the
    backend's own url; a launched process's or container's otherwise) with the backend's own `credentials`."""
    if backend.kind == "stdio":
        assert backend.command is not None
        command = [backend.command, *backend.args]
        env, name = dict(backend.env), backend.name

        def stdio() -> Transport:
            return StdioTransport(command, env=env or None, name=name)

        return stdio
    from hivegate.backends.remote import SseClientTransport, StreamableClientTransport

    target = url or backend.url
    assert target is not None
    creds = None if isinstance(credentials, NoCredentials) else credentials
    if backend.transport == "sse":
        if creds is not None and not isinstance(creds, StaticHeader):
            raise ConfigError(f"outgoingAuth: backend {backend.name!r}: an SSE backend takes headerInjection only")
        static = creds.fixed if isinstance(creds, StaticHeader) else {}
        return lambda: SseClientTransport(target, timeout=timeout, headers=static)
    name = backend.name
    return lambda: StreamableClientTransport(target, timeout=timeout, credentials=creds, name=name)


def _stdio_pools(
    cfg: VMCPConfig,
    factories: dict[str, TransportFactory],
    lifecycle: Lifecycle,
    summary: list[str],
    metrics: Metrics | None,
) -> None:
    """Replace the factory of each stdio backend with `stdioSharing` by its pool's channels."""
    stopped_idle = metrics.stdio_idle_stop if metrics is not None else None
    for b in cfg.backends:
        if b.kind != "stdio":
            continue
        idle, sharing = cfg.operational.stdio_for(b)
        stopped = f"stopped after {idle:g} s idle" if idle else "never stopped when idle"
        summary.append(f"backend {b.name}: stdio processes {sharing_name(sharing)}, {stopped}")
        if sharing:
            pool = StdioPool(factories[b.name], size=sharing, name=b.name, linger=idle, on_idle_stop=stopped_idle)
            lifecycle.on_shutdown(pool.close)  # registered early: closed after the sessions on it
            factories[b.name] = pool.channel


class _ConfiguredPolicies:
    """`incomingAuth.authz` as a policy source: at start-up the configuration's own; on a reload the policies of
    the configuration loaded again (`reload`), its other changes left for a restart."""

    def __init__(self, cfg: VMCPConfig, reload: Callable[[], VMCPConfig] | None) -> None:
        self._first: AuthzConfig | None = cfg.incoming_auth.authz
        self._reload = reload
        self.name = "incomingAuth.authz"

    def read(self) -> bytes:
        return b""  # not watched: reloaded on SIGHUP only

    def load(self) -> tuple[bytes, AuthzConfig]:
        authz, self._first = self._first, None
        if authz is None:
            if self._reload is None:
                raise ConfigError("incomingAuth.authz: this server's configuration cannot be loaded again")
            authz = self._reload().incoming_auth.authz
            if authz is None:
                raise ConfigError("incomingAuth.authz: gone from the configuration; restart to serve without it")
        return repr(authz).encode(), authz


def build_virtual_server(cfg: VMCPConfig, reload: Callable[[], VMCPConfig] | None = None) -> VirtualServer:
    """Everything but the discovery of backends, which `pool.start()` does on the running loop. `reload` loads the
    configuration again (SIGHUP reloads the Cedar policies from it)."""
    lifecycle = Lifecycle()  # shutdown in reverse order of construction: what is built first is closed last
    public: dict[str, ASGIApp] = {}
    prefixes: dict[str, ASGIApp] = {}
    summary: list[str] = []
    served_metrics = cfg.telemetry is not None and cfg.telemetry.enable_prometheus_metrics_path
    metrics = Metrics() if served_metrics else None  # nobody can read them otherwise: no cost per request
    tracing = None
    if cfg.telemetry is not None and cfg.telemetry.tracing_enabled and cfg.telemetry.endpoint:
        endpoint = cfg.telemetry.endpoint
        if "://" not in endpoint:
            endpoint = f"{'http' if cfg.telemetry.insecure else 'https'}://{endpoint}"
        tracing = Tracing(endpoint, cfg.telemetry.service_name or cfg.name, cfg.telemetry.sampling_rate,
                          dict(cfg.telemetry.headers))  # fmt: skip
    observers = build_observers(  # built first: closed last; their summary lines are printed last
        lifecycle, component=cfg.name, transport="streamable-http", audit=cfg.audit, metrics=metrics, tracing=tracing
    )
    entry = incoming(lifecycle, oidc=cfg.incoming_auth.oidc, auth_server=cfg.auth_server, server_name=cfg.name,
                     mcp_path=cfg.path, metrics=metrics)  # fmt: skip
    authenticator, resource_url, embedded = entry.authenticator, entry.resource_url, entry.embedded
    public.update(entry.routes)
    prefixes.update(entry.prefixes)
    if embedded is not None:
        summary.append(f"auth: embedded authorization server {embedded.server.issuer} (audience {resource_url})")
    else:
        oidc = cfg.incoming_auth.oidc
        if cfg.incoming_auth.type == "oidc":
            summary.append(f"auth: OIDC issuer {oidc.issuer}, audience {oidc.audience}")
        else:
            summary.append(f"auth: {cfg.incoming_auth.type} (no token required)")
    launched = {b.name: p for b in cfg.backends if (p := launched_for(b)) is not None}
    sts_http = sts_http_client(cfg)
    lifecycle.on_shutdown(sts_http.aclose)
    credentials = {b.name: backend_credentials(cfg, b, embedded, sts_http) for b in cfg.backends}
    factories = {
        b.name: backend_factory(
            b,
            cfg.operational.timeout_for(b.name),
            launched[b.name].url if b.name in launched else None,
            credentials[b.name],
        )
        for b in cfg.backends
    }
    _stdio_pools(cfg, factories, lifecycle, summary, metrics)
    proxies: dict[str, OwnProxy] = {}
    for b in cfg.backends:
        if b.own_auth is not None:
            callers_own = verified_by_vmcp(b.own_auth, cfg.auth_server)
            proxies[b.name] = proxy = OwnProxy(b.name, b.own_auth, credentials[b.name], callers_own=callers_own)
            lifecycle.on_shutdown(proxy.authenticator.aclose)
            summary.append(proxy.summary)
    # a stdio backend's credential is for its own proxy's checks alone: it is never sent, so never listed per caller
    scoped = frozenset(b.name for b in cfg.backends if credentials[b.name].needs_caller and b.kind != "stdio")
    pool = BackendPool(cfg, factories, launched, caller_scoped=scoped)
    if metrics is not None and any(b.kind == "stdio" for b in cfg.backends):
        metrics.gauge("hivegate_stdio_processes", "Stdio server processes running", lambda: StdioTransport.running)
        pool.on_idle_stop = metrics.stdio_idle_stop
    gate: McpGate | None = None
    if cfg.incoming_auth.authz is not None:
        gate = policy_gate(_ConfiguredPolicies(cfg, reload), cfg.name, lifecycle, watch=False, locate=pool.locate)
        names = PolicyNames(gate, pool, cfg.name)
        lifecycle.startup.append(names.started)  # the catalog is known once the gateway serves
        pool.subscribe(lambda _old, _new: names.check())
        summary.append(f"authz: {gate.policy_count} Cedar policies (SIGHUP reloads them)")
    registry = SessionRegistry(
        ttl=cfg.session_storage.ttl, max_sessions=MAX_SESSIONS, max_per_owner=MAX_SESSIONS_PER_USER
    )
    lifecycle.on_shutdown(registry.close)  # closed before the pool and stores its sessions use
    lifecycle.on_shutdown(pool.close)
    shared = shared_sessions(cfg.session_storage, cfg.session_storage.ttl)
    if shared is not None:
        lifecycle.on_shutdown(shared.aclose)
        summary.append(f"sessions: shared in Redis (TTL {cfg.session_storage.ttl:g} s)")
    longest = max([cfg.operational.timeout_for(b.name) for b in cfg.backends] or [cfg.operational.default_timeout])
    front = SessionFrontend(
        name=cfg.name,
        factory=lambda: VirtualTransport(pool, name=cfg.name, proxies=proxies),
        registry=registry,
        request_timeout=longest + 5.0,
        gate=gate,
        shared=shared,
    )
    summary.extend(lifecycle.summary)
    if metrics is not None:
        metrics.gauge("hivegate_active_sessions", "Open client sessions", lambda: len(registry))
        metrics.gauge("hivegate_vmcp_backends_healthy", "Backends answering their health checks", pool.healthy_count)
    readiness = Readiness()
    readiness.add("backends", lambda: _backends_ready(pool))
    entry.add_checks(readiness)
    for name, proxy in proxies.items():
        if proxy.authenticator.keys_ready is not None:
            readiness.add(f"keys of backend {name}", proxy.authenticator.keys_ready)
    if shared is not None:
        add_store_check(readiness, shared)
    public["/readyz"] = readiness_endpoint(readiness)
    if metrics is not None:
        public["/metrics"] = _metrics_endpoint(metrics, readiness)
    public["/ping"] = _alive
    public["/status"] = _status_endpoint(cfg, pool)
    public["/api/backends/health"] = _backends_endpoint(pool)
    settings = GatewaySettings(
        endpoints={cfg.path: front.handle},
        public=public,
        public_prefixes=prefixes,
        mcp_path=cfg.path,
        resource_url=resource_url,
        loopback_only=is_loopback_host(cfg.host),
        on_startup=tuple(lifecycle.startup),
        on_shutdown=(lifecycle.shutdown,),
        observers=observers,
        summary=summary,
    )
    return VirtualServer(Gateway(settings, authenticator), pool, summary)


async def _backends_ready(pool: BackendPool) -> str | None:
    down = [s.name for s in pool.statuses.values() if s.state in ("unhealthy", "starting")]
    if pool.healthy_count() == 0:
        return "no backend is healthy"
    if down and not pool.best_effort:
        return f"unhealthy: {', '.join(down)} (partialFailureMode: fail)"
    return None


async def _alive(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, {"status": "ok"})


def _status_endpoint(cfg: VMCPConfig, pool: BackendPool) -> ASGIApp:
    async def status(scope: Scope, receive: Receive, send: Send) -> None:
        catalog = pool.catalog
        healthy = pool.healthy_count()
        body = {
            "name": cfg.name,
            "version": __version__,
            "status": "healthy" if healthy == len(pool.names) else "degraded" if healthy else "unhealthy",
            "backends": [s.view() for s in pool.statuses.values()],
            "tools": len(catalog.tools),
            "prompts": len(catalog.prompts),
            "resources": len(catalog.resources),
        }
        await send_json(send, 200, body, [(b"cache-control", b"no-store")])

    return status


def _backends_endpoint(pool: BackendPool) -> ASGIApp:
    async def backends(scope: Scope, receive: Receive, send: Send) -> None:
        body = {"backends": {s.name: s.view() for s in pool.statuses.values()}}
        await send_json(send, 200, body, [(b"cache-control", b"no-store")])

    return backends


def _metrics_endpoint(metrics: Metrics, readiness: Readiness) -> ASGIApp:
    """`/metrics`, the readiness checks run first (cached for 2 s) so `hivegate_check_up{check}` is current."""

    async def render(scope: Scope, receive: Receive, send: Send) -> None:
        metrics.checked((r.name, r.ok) for r in await readiness.results())
        await send_bytes(send, 200, metrics.render(), [(b"content-type", CONTENT_TYPE.encode())])

    return render
