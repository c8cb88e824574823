"""What `hivegate run` runs: one MCP server (a stdio command, a container image or a remote URL) behind one
authenticated endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from hivegate.authn.oidc_config import OIDCConfig
from hivegate.httpclient.loopback import is_loopback_host

if TYPE_CHECKING:
    from hivegate.authserver.settings import AuthServerConfig
    from hivegate.authz.policy_config import AuthzConfig
    from hivegate.backends.container import ContainerRun
    from hivegate.vmcp.spec import TokenExchange
    from hivegate.vmcp.spec.model import SessionStorage

__all__ = ["ProxyMode", "RunConfig", "Transport"]

ProxyMode = Literal["streamable-http", "sse"]
Transport = Literal["stdio", "streamable-http", "sse"]


@dataclass(frozen=True, slots=True)
class RunConfig:
    name: str
    transport: Transport
    command: tuple[str, ...] = ()
    url: str | None = None  # None for an image's HTTP server: the gateway publishes it on a port it picks
    container: ContainerRun | None = None  # an image: stdio (a container per session) or HTTP (one container)
    attach: str | None = None  # NAMESPACE/POD/CONTAINER: a stdio server in a pod, through `pods/attach`
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    proxy_mode: ProxyMode = "streamable-http"
    auth: OIDCConfig = field(default_factory=lambda: OIDCConfig(mode="local"))
    allowed_origins: tuple[str, ...] = ()
    max_body: int = 4 * 1024 * 1024
    request_timeout: float = 120.0
    session_ttl: float = 7200.0
    max_sessions: int = 1000
    max_sessions_per_user: int = 50
    max_requests_per_user: int = 64
    max_streams_per_user: int = 8
    stream_idle_timeout: float = 300.0
    stdio_idle_timeout: float = 300.0  # 0: a stdio server process is never stopped for being idle
    stdio_sharing: int = 0  # stdio server processes shared by the sessions: 0 one per session, N a pool of N
    max_connections: int = 0  # 0: a quarter of the open files limit
    max_connections_per_address: int = 512  # 0: no cap
    read_header_timeout: float = 10.0
    read_body_timeout: float = 30.0
    log_level: str = "info"
    authz_config: str | None = None
    authz: AuthzConfig | None = None  # policies already read (`run -f`: the manifest's authzConfig), not a file
    authz_source: str = ""  # where `authz` comes from, for the logs
    tools: tuple[str, ...] = ()  # --tools: only these tools can be listed and called (empty: no filter)
    group: str = "default"  # --group: the workload's group (recorded for `list --group`)
    labels: tuple[tuple[str, str], ...] = ()  # --label KEY=VALUE: recorded on the workload
    auth_server_config: str | None = None
    auth_server: AuthServerConfig | None = field(default=None, repr=False)  # already read (`run -f`), not a file
    audit_config: str | None = None
    enable_audit: bool = False
    diagnostics_port: int | None = None  # None: no diagnostics listener
    log_format: str = "text"
    log_output: str = "stderr"  # --log-output: where the log lines go, stderr or stdout
    otel_endpoint: str | None = None  # OTLP/HTTP collector base URL; None: no tracing
    otel_service_name: str | None = None  # None: the workload name
    otel_sampling_rate: float = 1.0
    otel_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold a collector's API key
    token_exchange: TokenExchange | None = field(default=None, repr=False)  # the remote backend's own credential
    # --remote-forward-headers(-secret): headers of the gateway's own for the remote backend (values may be secrets)
    forward_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    upstream_inject: str | None = None  # --upstream-inject: the upstream provider whose token of the caller it gets
    background: bool = False  # runs as a background workload: the server's output is at `hivegate logs NAME`
    # `run -f`'s sessionStorage with redis: client sessions recorded there, resumed by another replica
    session_storage: SessionStorage | None = field(default=None, repr=False)  # may hold a password
    workers: int = 1  # --workers: processes serving the port (1: this process alone)

    @property
    def mcp_path(self) -> str:
        return "/mcp" if self.proxy_mode == "streamable-http" else "/sse"

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)
