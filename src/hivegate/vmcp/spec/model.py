"""The vMCP config model: the tree of frozen dataclasses `parse_vmcp_config` and `load_manifests` build.

`VMCPConfig` is a whole virtual MCP server; the runtime consumes it as is: durations are seconds, secrets are
resolved, defaults are filled. This module holds those dataclasses (backends, incoming auth, the outgoing auth
strategies, aggregation, operational settings, session storage, telemetry), the `Literal` types of their fields and
the defaults the parsers fill in; it reads nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeAlias

from hivegate.authn.oidc_config import OIDCConfig
from hivegate.authserver.settings import AuthServerConfig
from hivegate.authz.policy_config import AuthzConfig
from hivegate.observe.audit import AuditConfig

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "DEFAULT_GROUP",
    "DEFAULT_HOST",
    "DEFAULT_PATH",
    "DEFAULT_PORT",
    "DEFAULT_PREFIX_FORMAT",
    "Aggregation",
    "BackendAuthStrategy",
    "BackendConfig",
    "CircuitBreaker",
    "ContainerSpec",
    "FailureHandling",
    "HeaderInjection",
    "IncomingAuth",
    "Operational",
    "OutgoingAuth",
    "ServerAuth",
    "SessionStorage",
    "Telemetry",
    "TokenExchange",
    "ToolOverride",
    "Unauthenticated",
    "UpstreamInject",
    "VMCPConfig",
    "WorkloadTools",
]

Transport = Literal["streamable-http", "sse", "stdio"]
IncomingType = Literal["anonymous", "local", "oidc"]
ConflictResolution = Literal["prefix", "priority", "manual"]
PartialFailureMode = Literal["fail", "bestEffort"]
OutgoingSource = Literal["inline", "discovered"]

DEFAULT_GROUP = "default"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4483
DEFAULT_PATH = "/mcp"
DEFAULT_PREFIX_FORMAT = "{workload}_"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a token type URN


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """An image that serves MCP over HTTP, run with Docker or Podman (manifests only; see `manifests`)."""

    runtime: str  # the `docker` or `podman` executable found on PATH
    image: str
    port: int  # the port the server listens on inside the container
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class ServerAuth:
    """What an `MCPServer`'s own proxy checks in ToolHive (its `oidcConfig`/`oidcConfigRef` and `authzConfig`), which
    the vMCP checks in its place (`hivegate.vmcp.ownproxy`): `oidc` verifies the credential the vMCP sends it (None:
    no token, every request is `anonymous`, as at a ToolHive proxy without OIDC); `authz` decides under the server's
    own names. `where` names the resource, for errors."""

    oidc: OIDCConfig | None = None
    authz: AuthzConfig | None = None
    where: str = ""


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """One backend MCP server.

    `kind` tells how to reach it: `remote` (`url`), `stdio` (start `command` and speak MCP over its stdin/stdout),
    `launched` (start `command`, then connect to `url`: manifests only) or `container` (`container`, published on a
    port the runtime picks: manifests only).
    """

    name: str
    transport: Transport = "streamable-http"
    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    container: ContainerSpec | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    own_auth: ServerAuth | None = None  # an MCPServer's own proxy settings (manifests only)
    stdio_idle_timeout: float | None = None  # `stdioIdleTimeout` (stdio only); None: `operational`'s
    stdio_sharing: int | None = None  # `stdioSharing` (stdio only): 0 per-session, N a pool of N; None: `operational`'s

    @property
    def kind(self) -> Literal["remote", "stdio", "launched", "container"]:
        if self.container is not None:
            return "container"
        if self.command is not None:
            return "launched" if self.url is not None else "stdio"
        return "remote"


@dataclass(frozen=True, slots=True)
class IncomingAuth:
    """How clients authenticate (`oidc.mode` is `type`) and, optionally, the Cedar policies they are held to."""

    type: IncomingType
    oidc: OIDCConfig
    authz: AuthzConfig | None = None
    primary_upstream_provider: str | None = None  # the upstream whose claims Cedar sees (embedded AS only)


@dataclass(frozen=True, slots=True)
class Unauthenticated:
    TYPE: ClassVar[str] = "unauthenticated"


@dataclass(frozen=True, slots=True)
class HeaderInjection:
    TYPE: ClassVar[str] = "headerInjection"
    header_name: str
    header_value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenExchange:
    """RFC 8693 token exchange of the caller's token (or an upstream provider's) for one the backend accepts."""

    TYPE: ClassVar[str] = "tokenExchange"
    token_url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    audience: str | None = None
    scopes: tuple[str, ...] = ()
    subject_token_type: str = ACCESS_TOKEN_TYPE
    subject_provider_name: str | None = None
    external_token_header_name: str | None = None  # None: replace the Authorization header


@dataclass(frozen=True, slots=True)
class UpstreamInject:
    """Send the upstream identity provider's token (held by the embedded authorization server) to the backend."""

    TYPE: ClassVar[str] = "upstreamInject"
    provider_name: str


BackendAuthStrategy: TypeAlias = Unauthenticated | HeaderInjection | TokenExchange | UpstreamInject


@dataclass(frozen=True, slots=True)
class OutgoingAuth:
    source: OutgoingSource = "inline"
    default: BackendAuthStrategy | None = None
    backends: Mapping[str, BackendAuthStrategy] = field(default_factory=dict)

    def for_backend(self, name: str) -> BackendAuthStrategy:
        """The backend's own strategy, else the default, else unauthenticated."""
        return self.backends.get(name) or self.default or Unauthenticated()


@dataclass(frozen=True, slots=True)
class ToolOverride:
    name: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class WorkloadTools:
    """Per-backend tool selection: `filter` is an allow-list (empty: every tool), `overrides` keyed by original name."""

    workload: str
    filter: tuple[str, ...] = ()
    exclude_all: bool = False
    overrides: Mapping[str, ToolOverride] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Aggregation:
    conflict_resolution: ConflictResolution = "prefix"
    prefix_format: str = DEFAULT_PREFIX_FORMAT
    priority_order: tuple[str, ...] = ()
    tools: tuple[WorkloadTools, ...] = ()
    exclude_all_tools: bool = False

    def tools_for(self, workload: str) -> WorkloadTools:
        return next((t for t in self.tools if t.workload == workload), WorkloadTools(workload))


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    enabled: bool = False
    failure_threshold: int = 5
    timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class FailureHandling:
    health_check_interval: float = 30.0
    health_check_timeout: float | None = None  # None: no timeout of its own
    unhealthy_threshold: int = 3
    status_reporting_interval: float = 30.0
    partial_failure_mode: PartialFailureMode = "fail"
    circuit_breaker: CircuitBreaker = field(default_factory=CircuitBreaker)


@dataclass(frozen=True, slots=True)
class Operational:
    log_level: str | None = None
    default_timeout: float = 30.0
    per_workload_timeouts: Mapping[str, float] = field(default_factory=dict)
    failure_handling: FailureHandling = field(default_factory=FailureHandling)
    stdio_idle_timeout: float = 300.0  # a stdio backend's process idle this long is stopped (0: never)
    stdio_sharing: int = 0  # a stdio backend's processes: 0 one per client session, N a pool of N shared ones

    def timeout_for(self, workload: str) -> float:
        return self.per_workload_timeouts.get(workload, self.default_timeout)

    def stdio_for(self, backend: BackendConfig) -> tuple[float, int]:
        """(idle timeout, sharing) of a stdio backend: its own, else the defaults here."""
        idle = self.stdio_idle_timeout if backend.stdio_idle_timeout is None else backend.stdio_idle_timeout
        return idle, self.stdio_sharing if backend.stdio_sharing is None else backend.stdio_sharing


@dataclass(frozen=True, slots=True)
class SessionStorage:
    provider: Literal["memory", "redis"] = "memory"
    address: str | None = None  # host:port
    url: str | None = field(default=None, repr=False)  # redis:// or rediss://, may hold a password
    db: int = 0
    key_prefix: str = "hivegate:vmcp:"
    password: str | None = field(default=None, repr=False)
    ttl: float = 1800.0

    @property
    def redis_url(self) -> str | None:
        """The URL to connect to (`url`, else one built from `address` and `db`); None for memory."""
        if self.provider != "redis":
            return None
        return self.url or f"redis://{self.address}/{self.db}"


@dataclass(frozen=True, slots=True)
class Telemetry:
    """OpenTelemetry settings in ToolHive's `telemetry.Config` keys (`serviceName` empty: the vMCP's name)."""

    endpoint: str | None = None
    service_name: str | None = None
    service_version: str | None = None
    tracing_enabled: bool = False
    metrics_enabled: bool = False
    sampling_rate: float = 0.05
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    insecure: bool = False
    enable_prometheus_metrics_path: bool = False
    environment_variables: tuple[str, ...] = ()
    custom_attributes: Mapping[str, str] = field(default_factory=dict)
    use_legacy_attributes: bool = True


@dataclass(frozen=True, slots=True)
class VMCPConfig:
    """A whole virtual MCP server: what `hivegate vmcp` loads from a config file or from manifests."""

    name: str
    backends: tuple[BackendConfig, ...]
    incoming_auth: IncomingAuth
    group_ref: str = DEFAULT_GROUP
    outgoing_auth: OutgoingAuth = field(default_factory=OutgoingAuth)
    aggregation: Aggregation = field(default_factory=Aggregation)
    operational: Operational = field(default_factory=Operational)
    session_storage: SessionStorage = field(default_factory=SessionStorage)
    auth_server: AuthServerConfig | None = None
    telemetry: Telemetry | None = None
    audit: AuditConfig | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    path: str = DEFAULT_PATH
    metadata: Mapping[str, str] = field(default_factory=dict)

    def backend(self, name: str) -> BackendConfig:
        for backend in self.backends:
            if backend.name == name:
                return backend
        raise KeyError(name)
