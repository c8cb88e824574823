"""Configuration of the virtual MCP server (vMCP), in the keys of ToolHive's vMCP config (`pkg/vmcp/config`).

`load_vmcp_config(path)` reads one YAML document; `parse_vmcp_config(data, resolver=…)` decodes an already-parsed
one. The result is a tree of frozen dataclasses (`VMCPConfig`) that the runtime consumes as is: durations are
seconds, secrets are resolved, defaults are filled. Decoding is strict: an unknown key anywhere is
`ConfigError("<path>: unknown field")`, e.g. `aggregation.tools[1].filtr: unknown field`, and every other error names
its path too. Cross-references are checked at load: outgoing-auth and aggregation entries must name backends, an
`upstreamInject` (or a token exchange's `subjectProviderName`) must name an upstream of `authServerConfig`, a token
exchange without `authServerConfig` (whose subject is the caller's incoming token) needs `incomingAuth.type: oidc`,
and an embedded authorization server needs `incomingAuth.type: oidc` with its issuer.

Keys (defaults in brackets):
- `name` (required), `groupRef` [default], `backends[]`: `name` (a DNS label, unique) and either `url` + `transport`
  [streamable-http, or sse] or a stdio server: `command`, `args`, `env`; `metadata` (string map).
- `incomingAuth`: `type` anonymous | local | oidc; `oidc{issuer, clientId, clientSecretEnv, audience, resource,
  jwksUrl, introspectionUrl, scopes, protectedResourceAllowPrivateIp, insecureAllowHttp}`; `authz{type: cedar | none,
  policies, entitiesJson, groupClaimName, roleClaimName, primaryUpstreamProvider}`.
- `authServerConfig`: the embedded authorization server, as `hivegate.authserver.config` reads it.
- `outgoingAuth`: `source` [inline] (`discovered` needs manifests, see `hivegate.vmcp.manifests`), `default` and
  `backends{<backend>: strategy}`. A strategy is `{type, headerInjection | tokenExchange | upstreamInject}` with type
  `unauthenticated`, `headerInjection`, `tokenExchange` or `upstreamInject` (ToolHive's vMCP spellings
  `header_injection`, `token_exchange`, `upstream_inject` are accepted too). `headerInjection{headerName,
  headerValue | headerValueEnv | valueSecretRef}`; `tokenExchange{tokenUrl, clientId, clientSecret |
  clientSecretEnv | clientSecretRef, audience, scopes, subjectTokenType, subjectProviderName,
  externalTokenHeaderName}`; `upstreamInject{providerName}`. Backends without a strategy are unauthenticated.
- `aggregation`: `conflictResolution` [prefix] | priority | manual; `conflictResolutionConfig{prefixFormat
  [{workload}_], priorityOrder}` (priority needs priorityOrder; manual conflicts are found at start-up, not here);
  `tools[]{workload, filter, excludeAll, overrides{<tool>: {name, description}}}`; `excludeAllTools`.
- `operational`: `logLevel` (debug); `timeouts{default [30s], perWorkload}`; `failureHandling{healthCheckInterval
  [30s], healthCheckTimeout, unhealthyThreshold [3], statusReportingInterval [30s], partialFailureMode [fail] |
  bestEffort, circuitBreaker{enabled [false], failureThreshold [5], timeout [60s]}}`.
- `sessionStorage`: `provider` [memory] | redis with `address` (host:port) or `url`, `db`, `keyPrefix`
  [hivegate:vmcp:], `passwordRef`; `ttl` [30m].
- `telemetry` (OpenTelemetry: `endpoint`, `serviceName`, `samplingRate` [0.05], …) and `audit` (the keys of
  `hivegate.observe.audit`).
- `compositeTools`, `compositeToolRefs`, `optimizer`: not supported yet (an error when not empty).

hivegate's additions: `server{host [127.0.0.1], port [4483], path [/mcp]}`, `sessionStorage.url`/`ttl`/
`passwordRef`, `headerInjection.valueSecretRef` and `tokenExchange.clientSecretRef` (secret references as in
`hivegate.authserver.secrets`). Durations are Go-style strings ("30s", "1h30m").
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeAlias
from urllib.parse import urlsplit

import yaml

from hivegate.authn.config import OIDCConfig
from hivegate.authserver.config import AuthServerConfig, parse_auth_server_config
from hivegate.authserver.secrets import SecretRef, SecretResolver, parse_secret_ref
from hivegate.authz.config import AuthzConfig, parse_authz_config
from hivegate.config.reader import Reader
from hivegate.errors import ConfigError
from hivegate.observe.audit import AuditConfig

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_PORT",
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
    "SessionStorage",
    "Telemetry",
    "TokenExchange",
    "ToolOverride",
    "Unauthenticated",
    "UpstreamInject",
    "VMCPConfig",
    "WorkloadTools",
    "load_vmcp_config",
    "parse_vmcp_config",
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

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 section 5.6.2 token
TOKEN_TYPES = {
    "access_token": ACCESS_TOKEN_TYPE,
    "id_token": "urn:ietf:params:oauth:token-type:id_token",
    "jwt": "urn:ietf:params:oauth:token-type:jwt",
}
_STRATEGY_TYPES = {
    "unauthenticated": "unauthenticated",
    "headerInjection": "headerInjection",
    "header_injection": "headerInjection",
    "tokenExchange": "tokenExchange",
    "token_exchange": "tokenExchange",
    "upstreamInject": "upstreamInject",
    "upstream_inject": "upstreamInject",
}
_UNSUPPORTED_STRATEGIES = frozenset({"awsSts", "aws_sts", "obo", "xaa"})
_EXCHANGE_KEYS = ("tokenUrl", "clientId", "clientSecret", "clientSecretEnv", "clientSecretRef", "audience", "scopes",
                  "subjectTokenType", "subjectProviderName", "externalTokenHeaderName")  # fmt: skip
_TOP_KEYS = ("name", "groupRef", "backends", "incomingAuth", "authServerConfig", "outgoingAuth", "aggregation",
             "operational", "sessionStorage", "telemetry", "audit", "server", "metadata", "compositeTools",
             "compositeToolRefs", "optimizer")  # fmt: skip
_OIDC_FLAGS = {
    "--oidc-issuer": "issuer",
    "--oidc-jwks-url": "jwksUrl",
    "--oidc-introspection-url": "introspectionUrl",
    "--oidc-audience": "audience",
    "--oidc-client-id": "clientId",
    "--oidc-client-secret": "clientSecret",
    "--oidc-scopes": "scopes",
    "--resource-url": "resource",
    "--oidc-insecure-allow-http": "insecureAllowHttp",
    "--jwks-auth-token-file": "jwksAuthTokenPath",
}


# -- the model ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """An image that serves MCP over HTTP, run with Docker or Podman (manifests only; see `manifests`)."""

    runtime: str  # the `docker` or `podman` executable found on PATH
    image: str
    port: int  # the port the server listens on inside the container
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


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

    def timeout_for(self, workload: str) -> float:
        return self.per_workload_timeouts.get(workload, self.default_timeout)


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


# -- loading -----------------------------------------------------------------------------------------------------------


def load_vmcp_config(path: str | Path, *, resolver: SecretResolver | None = None) -> VMCPConfig:
    """Read a vMCP config file (one YAML document); errors read `<file>: <path>: <problem>`."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"vmcp config {p}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"vmcp config {p}: not valid YAML: {first}") from None
    if data is None:
        raise ConfigError(f"vmcp config {p}: empty")
    if isinstance(data, Mapping) and "kind" in data and "apiVersion" in data:
        raise ConfigError(f"vmcp config {p}: a Kubernetes manifest ({data['kind']}); load it with -f")
    try:
        return parse_vmcp_config(data, resolver=resolver or SecretResolver(base_dir=p.parent))
    except ConfigError as exc:
        raise ConfigError(f"{p.name}: {exc}") from None


def parse_vmcp_config(data: Any, *, resolver: SecretResolver, where: str = "") -> VMCPConfig:
    """Decode an already-parsed config; `where` prefixes every path in errors."""
    r = Reader(data, where, known=_TOP_KEYS)
    name = r.text("name", required=True)
    group = r.text("groupRef") or DEFAULT_GROUP
    backends = tuple(parse_backend(b, f"{r.at('backends')}[{i}]") for i, b in enumerate(r.items("backends")))
    if not backends:
        raise ConfigError(f"{r.at('backends')}: at least one backend is required")
    check_unique_backends(backends, r.at("backends"))
    auth_server = None
    if r.get("authServerConfig") is not None:
        auth_server = parse_auth_server_config(
            r.get("authServerConfig"), resolver=resolver, where=r.at("authServerConfig")
        )
    incoming = parse_incoming_auth(r.section("incomingAuth", required=True), r.at("incomingAuth"), resolver)
    outgoing = parse_outgoing_auth(r.section("outgoingAuth"), r.at("outgoingAuth"), resolver)
    server = Reader(r.section("server"), r.at("server"))
    host = server.text("host") or DEFAULT_HOST
    port = server.integer("port", default=DEFAULT_PORT, minimum=1, maximum=65535)
    path = server.text("path") or DEFAULT_PATH
    if not path.startswith("/"):
        raise ConfigError(f"{server.at('path')}: must start with /")
    server.done()
    cfg = VMCPConfig(
        name=name,
        group_ref=group,
        backends=backends,
        incoming_auth=incoming,
        outgoing_auth=outgoing,
        aggregation=parse_aggregation(r.section("aggregation"), r.at("aggregation")),
        operational=parse_operational(r.section("operational"), r.at("operational")),
        session_storage=parse_session_storage(r.section("sessionStorage"), r.at("sessionStorage"), resolver),
        auth_server=auth_server,
        telemetry=parse_telemetry(r.section("telemetry"), r.at("telemetry")) if r.has("telemetry") else None,
        audit=parse_audit(r.section("audit"), r.at("audit")) if r.has("audit") else None,
        host=host,
        port=port,
        path=path,
        metadata=r.string_map("metadata"),
    )
    reject_unsupported(r)
    r.done()
    check_references(cfg, where)
    return cfg


# -- sections ----------------------------------------------------------------------------------------------------------


def parse_backend(data: Any, where: str) -> BackendConfig:
    r = Reader(data, where, known=("name", "url", "transport", "command", "args", "env", "metadata"))
    name = backend_name(r.text("name", required=True), r.at("name"))
    url, command = r.text("url"), r.text("command")
    if url and command:
        raise ConfigError(f"{where}: give url (a remote server) or command (a stdio server), not both")
    if not url and not command:
        raise ConfigError(f"{where}: needs url (a remote server) or command (a stdio server)")
    metadata = r.string_map("metadata")
    if command:
        transport = r.text("transport") or "stdio"
        if transport != "stdio":
            raise ConfigError(f"{r.at('transport')}: a command backend speaks stdio, got {transport!r}")
        backend = BackendConfig(
            name, "stdio", command=command, args=tuple(r.strings("args")), env=r.string_map("env"), metadata=metadata
        )
    else:
        for key in ("args", "env"):
            if r.has(key):
                raise ConfigError(f"{r.at(key)}: only used with command (a stdio server)")
        backend = BackendConfig(
            name,
            http_transport(r.text("transport"), r.at("transport")),
            url=http_url(url, r.at("url")),
            metadata=metadata,
        )
    r.done()
    return backend


def parse_incoming_auth(data: Mapping[str, Any], where: str, resolver: SecretResolver) -> IncomingAuth:
    r = Reader(data, where)
    kind = r.choice("type", ("anonymous", "local", "oidc"), required=True)
    if kind == "oidc":
        oidc = parse_oidc(r.section("oidc", required=True), r.at("oidc"), resolver)
    else:
        if r.has("oidc"):
            raise ConfigError(f"{r.at('oidc')}: only used when type is oidc")
        oidc = OIDCConfig(mode=kind)  # type: ignore[arg-type]
    authz, primary = parse_authz(r.get("authz"), r.at("authz"))
    r.done()
    return IncomingAuth(kind, oidc, authz, primary)  # type: ignore[arg-type]


def parse_oidc(data: Mapping[str, Any], where: str, resolver: SecretResolver) -> OIDCConfig:
    r = Reader(data, where)
    env = r.text("clientSecretEnv")
    cfg = OIDCConfig(
        issuer=r.text("issuer", required=True),
        audience=r.text("audience", required=True),
        client_id=r.text("clientId") or None,
        client_secret=resolver.resolve_text(SecretRef(env=env), r.at("clientSecretEnv")) if env else None,
        resource_url=r.text("resource") or None,
        jwks_url=r.text("jwksUrl") or None,
        introspection_url=r.text("introspectionUrl") or None,
        scopes=tuple(r.strings("scopes")) or ("openid",),
        jwks_allow_private_ip=r.flag("protectedResourceAllowPrivateIp", default=False),
        insecure_allow_http=r.flag("insecureAllowHttp", default=False),
    )
    r.done()
    return checked_oidc(cfg, where)


def checked_oidc(cfg: OIDCConfig, where: str) -> OIDCConfig:
    """`cfg.validate()`, with its messages' flag names turned into this config's keys."""
    try:
        cfg.validate()
    except ConfigError as exc:
        message = str(exc)
        for flag, key in _OIDC_FLAGS.items():
            message = message.replace(flag, key)
        raise ConfigError(f"{where}: {message}") from None
    return cfg


def parse_authz(data: Any, where: str) -> tuple[AuthzConfig | None, str | None]:
    """`incomingAuth.authz` (ToolHive vMCP's shape) → our `AuthzConfig` and the primary upstream provider."""
    if data is None:
        return None, None
    r = Reader(data, where)
    kind = r.choice("type", ("cedar", "none"), required=True)
    policies = r.strings("policies")
    cedar = {
        "policies": policies,
        "entities_json": r.text("entitiesJson") or "[]",
        "group_claim_name": r.text("groupClaimName"),
        "role_claim_name": r.text("roleClaimName"),
    }
    primary = r.text("primaryUpstreamProvider") or None
    r.done()
    if kind == "none":
        if policies:
            raise ConfigError(f"{r.at('policies')}: only used when type is cedar")
        return None, primary
    if not policies:
        raise ConfigError(f"{r.at('policies')}: at least one policy is required when type is cedar")
    return parse_authz_config({"version": "1.0", "type": "cedarv1", "cedar": cedar}, source=where), primary


def parse_outgoing_auth(
    data: Mapping[str, Any], where: str, resolver: SecretResolver, *, allow_discovered: bool = False
) -> OutgoingAuth:
    r = Reader(data, where)
    source = r.choice("source", ("inline", "discovered")) or "inline"
    if source == "discovered" and not allow_discovered:
        raise ConfigError(
            f"{r.at('source')}: discovered reads each MCPServer's externalAuthConfigRef, which only Kubernetes "
            "manifests have (load them with -f); use inline here"
        )
    default = parse_strategy(r.get("default"), r.at("default"), resolver) if r.get("default") is not None else None
    backends = {
        str(name): parse_strategy(value, f"{r.at('backends')}.{name}", resolver)
        for name, value in r.section("backends").items()
    }
    r.done()
    return OutgoingAuth(source, default, backends)  # type: ignore[arg-type]


def parse_strategy(data: Any, where: str, resolver: SecretResolver) -> BackendAuthStrategy:
    """One outgoing strategy `{type, headerInjection | tokenExchange | upstreamInject}`; secrets resolved now."""
    r = Reader(data, where)
    given = r.text("type", required=True)
    kind = _STRATEGY_TYPES.get(given)
    if kind is None:
        if given in _UNSUPPORTED_STRATEGIES:
            raise ConfigError(f"{r.at('type')}: strategy {given!r} is not supported yet")
        raise ConfigError(
            f"{r.at('type')}: unknown strategy type {given!r} "
            "(use unauthenticated, headerInjection, tokenExchange or upstreamInject)"
        )
    for other in ("headerInjection", "tokenExchange", "upstreamInject"):
        if other != kind and r.has(other):
            raise ConfigError(f"{r.at(other)}: not used with type {given}")
    strategy: BackendAuthStrategy
    if kind == "unauthenticated":
        strategy = Unauthenticated()
    elif kind == "headerInjection":
        strategy = _header_injection(r.section(kind, required=True), r.at(kind), resolver)
    elif kind == "tokenExchange":
        strategy = _token_exchange(r.section(kind, required=True), r.at(kind), resolver)
    else:
        s = Reader(r.section(kind, required=True), r.at(kind))
        strategy = UpstreamInject(s.text("providerName", required=True))
        s.done()
    r.done()
    return strategy


def _header_injection(data: Mapping[str, Any], where: str, resolver: SecretResolver) -> HeaderInjection:
    r = Reader(data, where)
    name = r.text("headerName", required=True)
    if not _HEADER_NAME.fullmatch(name):
        raise ConfigError(f"{r.at('headerName')}: not a valid HTTP header name: {name!r}")
    value = _one_secret(r, "headerValue", "headerValueEnv", "valueSecretRef", resolver, required=True)
    if value is None or any(c in value for c in "\r\n\0"):
        raise ConfigError(f"{where}: the header value must be one line of text")
    r.done()
    return HeaderInjection(name, value)


def _token_exchange(data: Mapping[str, Any], where: str, resolver: SecretResolver) -> TokenExchange:
    r = Reader(data, where, known=_EXCHANGE_KEYS)
    url = secure_url(r.text("tokenUrl", required=True), r.at("tokenUrl"))
    token_type = r.text("subjectTokenType") or "access_token"
    if token_type not in TOKEN_TYPES and token_type not in TOKEN_TYPES.values():
        raise ConfigError(f"{r.at('subjectTokenType')}: must be access_token, id_token or jwt (or its URN)")
    header = r.text("externalTokenHeaderName") or None
    if header is not None and not _HEADER_NAME.fullmatch(header):
        raise ConfigError(f"{r.at('externalTokenHeaderName')}: not a valid HTTP header name: {header!r}")
    exchange = TokenExchange(
        token_url=url,
        client_id=r.text("clientId") or None,
        client_secret=_one_secret(r, "clientSecret", "clientSecretEnv", "clientSecretRef", resolver, required=False),
        audience=r.text("audience") or None,
        scopes=tuple(r.strings("scopes")),
        subject_token_type=TOKEN_TYPES.get(token_type, token_type),
        subject_provider_name=r.text("subjectProviderName") or None,
        external_token_header_name=header,
    )
    r.done()
    return exchange


def _one_secret(
    r: Reader, value_key: str, env_key: str, ref_key: str, resolver: SecretResolver, *, required: bool
) -> str | None:
    given = [k for k in (value_key, env_key, ref_key) if r.get(k) not in (None, "")]
    if len(given) > 1:
        raise ConfigError(f"{r.at(given[1])}: give one of {value_key}, {env_key} or {ref_key}")
    if not given:
        if required:
            raise ConfigError(f"{r.where}: needs {value_key}, {env_key} or {ref_key}")
        return None
    key = given[0]
    if key == value_key:
        return r.text(key)
    if key == env_key:
        return resolver.resolve_text(SecretRef(env=r.text(key)), r.at(key))
    return resolver.resolve_text(parse_secret_ref(r.get(key), r.at(key)), r.at(key))


def parse_aggregation(data: Mapping[str, Any], where: str) -> Aggregation:
    r = Reader(data, where)
    mode = r.choice("conflictResolution", ("prefix", "priority", "manual")) or "prefix"
    c = Reader(r.section("conflictResolutionConfig"), r.at("conflictResolutionConfig"))
    prefix = c.text("prefixFormat") or DEFAULT_PREFIX_FORMAT
    if "{workload}" not in prefix:
        raise ConfigError(f"{c.at('prefixFormat')}: must contain {{workload}}, got {prefix!r}")
    order = tuple(c.strings("priorityOrder"))
    if mode == "priority" and not order:
        raise ConfigError(f"{c.at('priorityOrder')}: required when conflictResolution is priority")
    if len(set(order)) != len(order):
        raise ConfigError(f"{c.at('priorityOrder')}: names a workload twice")
    c.done()
    tools = tuple(_workload_tools(t, f"{r.at('tools')}[{i}]") for i, t in enumerate(r.items("tools")))
    seen: set[str] = set()
    for i, entry in enumerate(tools):
        if entry.workload in seen:
            raise ConfigError(f"{r.at('tools')}[{i}].workload: {entry.workload!r} is configured twice")
        seen.add(entry.workload)
    agg = Aggregation(mode, prefix, order, tools, r.flag("excludeAllTools", default=False))  # type: ignore[arg-type]
    r.done()
    return agg


def _workload_tools(data: Any, where: str) -> WorkloadTools:
    r = Reader(data, where)
    workload = r.text("workload", required=True)
    if r.get("toolConfigRef") is not None:
        raise ConfigError(
            f"{r.at('toolConfigRef')}: MCPToolConfig references are not supported yet; use filter/overrides"
        )
    overrides: dict[str, ToolOverride] = {}
    for tool, value in r.section("overrides").items():
        o = Reader(value, f"{r.at('overrides')}.{tool}")
        override = ToolOverride(o.text("name") or None, o.text("description") or None)
        if override.name is None and override.description is None:
            raise ConfigError(f"{o.where}: give name or description")
        o.done()
        overrides[str(tool)] = override
    entry = WorkloadTools(workload, tuple(r.strings("filter")), r.flag("excludeAll", default=False), overrides)
    r.done()
    return entry


def parse_operational(data: Mapping[str, Any], where: str) -> Operational:
    r = Reader(data, where)
    level = r.choice("logLevel", ("debug",)) or None
    t = Reader(r.section("timeouts"), r.at("timeouts"))
    default = t.duration("default", default=30.0, positive=True)
    per = Reader(t.section("perWorkload"), t.at("perWorkload"))
    per_workload = {str(k): per.duration(str(k), default=0.0, positive=True) for k in list(per.keys())}
    per.done()
    t.done()
    f = Reader(r.section("failureHandling"), r.at("failureHandling"))
    interval = f.duration("healthCheckInterval", default=30.0, positive=True)
    check_timeout = f.duration("healthCheckTimeout", default=0.0) or None
    if check_timeout is not None and check_timeout >= interval:
        raise ConfigError(f"{f.at('healthCheckTimeout')}: must be less than healthCheckInterval")
    threshold = f.integer("unhealthyThreshold", default=3, minimum=1)
    reporting = f.duration("statusReportingInterval", default=30.0, positive=True)
    mode = f.text("partialFailureMode") or "fail"
    mode = "bestEffort" if mode == "best_effort" else mode
    if mode not in ("fail", "bestEffort"):
        raise ConfigError(f"{f.at('partialFailureMode')}: must be fail or bestEffort, got {mode!r}")
    b = Reader(f.section("circuitBreaker"), f.at("circuitBreaker"))
    breaker = CircuitBreaker(
        enabled=b.flag("enabled", default=False),
        failure_threshold=b.integer("failureThreshold", default=5, minimum=1),
        timeout=b.duration("timeout", default=60.0),
    )
    if breaker.timeout < 1.0:
        raise ConfigError(f"{b.at('timeout')}: must be at least 1s")
    b.done()
    f.done()
    op = Operational(
        log_level=level,
        default_timeout=default,
        per_workload_timeouts=per_workload,
        failure_handling=FailureHandling(interval, check_timeout, threshold, reporting, mode, breaker),  # type: ignore[arg-type]
    )
    r.done()
    return op


def parse_session_storage(data: Mapping[str, Any], where: str, resolver: SecretResolver) -> SessionStorage:
    r = Reader(data, where)
    provider = r.choice("provider", ("memory", "redis")) or "memory"
    address, url = r.text("address") or None, r.text("url") or None
    ref = r.get("passwordRef")
    password = resolver.resolve_text(parse_secret_ref(ref, r.at("passwordRef")), r.at("passwordRef")) if ref else None
    storage = SessionStorage(
        provider=provider,  # type: ignore[arg-type]
        address=address,
        url=url,
        db=r.integer("db", default=0, minimum=0),
        key_prefix=r.text("keyPrefix") or "hivegate:vmcp:",
        password=password,
        ttl=r.duration("ttl", default=1800.0, positive=True),
    )
    if provider == "redis":
        if (address is None) == (url is None):
            raise ConfigError(f"{where}: redis needs address (host:port) or url (redis://…), one of them")
        if url is not None and urlsplit(url).scheme not in ("redis", "rediss"):
            raise ConfigError(f"{r.at('url')}: must be a redis:// or rediss:// URL")
    elif address or url or password:
        raise ConfigError(f"{where}: address, url and passwordRef are only used with provider redis")
    r.done()
    return storage


def parse_telemetry(data: Mapping[str, Any], where: str) -> Telemetry:
    r = Reader(data, where)
    rate_value = r.get("samplingRate")
    try:
        rate = 0.05 if rate_value in (None, "") else float(rate_value)
    except (TypeError, ValueError):
        raise ConfigError(f"{r.at('samplingRate')}: must be a number between 0 and 1") from None
    if not 0.0 <= rate <= 1.0 or isinstance(rate_value, bool):
        raise ConfigError(f"{r.at('samplingRate')}: must be a number between 0 and 1")
    telemetry = Telemetry(
        endpoint=r.text("endpoint") or None,
        service_name=r.text("serviceName") or None,
        service_version=r.text("serviceVersion") or None,
        tracing_enabled=r.flag("tracingEnabled", default=False),
        metrics_enabled=r.flag("metricsEnabled", default=False),
        sampling_rate=rate,
        headers=r.string_map("headers"),
        insecure=r.flag("insecure", default=False),
        enable_prometheus_metrics_path=r.flag("enablePrometheusMetricsPath", default=False),
        environment_variables=tuple(r.strings("environmentVariables")),
        custom_attributes=r.string_map("customAttributes"),
        use_legacy_attributes=r.flag("useLegacyAttributes", default=True),
    )
    if telemetry.endpoint and not (telemetry.tracing_enabled or telemetry.metrics_enabled):
        raise ConfigError(f"{r.at('endpoint')}: set, but tracingEnabled and metricsEnabled are both false")
    r.done()
    return telemetry


def parse_audit(data: Mapping[str, Any], where: str) -> AuditConfig:
    r = Reader(data, where)
    audit = AuditConfig(
        component=r.text("component"),
        event_types=frozenset(r.strings("eventTypes")),
        exclude_event_types=frozenset(r.strings("excludeEventTypes")),
        include_request_data=r.flag("includeRequestData", default=False),
        include_response_data=r.flag("includeResponseData", default=False),
        max_data_size=r.integer("maxDataSize", default=1024, minimum=0),
        log_file=r.text("logFile") or None,
    )
    r.done()
    return audit


def reject_unsupported(r: Reader) -> None:
    """The ToolHive keys hivegate reads but cannot honour yet: an error when they hold anything."""
    for key in ("compositeTools", "compositeToolRefs", "optimizer"):
        if r.get(key) not in (None, [], {}):
            raise ConfigError(f"{r.at(key)}: not supported yet")


# -- cross-references --------------------------------------------------------------------------------------------------


def check_unique_backends(backends: Sequence[BackendConfig], where: str) -> None:
    seen: set[str] = set()
    for i, backend in enumerate(backends):
        if backend.name in seen:
            raise ConfigError(f"{where}[{i}].name: duplicate backend name {backend.name!r}")
        seen.add(backend.name)


def check_references(cfg: VMCPConfig, where: str = "", *, paths: Mapping[str, str] | None = None) -> None:
    """Every name a section uses must exist. `paths` maps a section key to where it was written (manifests)."""

    def at(key: str) -> str:
        if paths and key in paths:
            return paths[key]
        return f"{where}.{key}" if where else key

    names = [b.name for b in cfg.backends]
    known = set(names)
    for backend in cfg.outgoing_auth.backends:
        if backend not in known:
            raise ConfigError(f"{at('outgoingAuth')}.backends.{backend}: no backend named {backend!r} ({_list(names)})")
    strategies = [(f"{at('outgoingAuth')}.backends.{b}", s) for b, s in cfg.outgoing_auth.backends.items()]
    if cfg.outgoing_auth.default is not None:
        strategies.insert(0, (f"{at('outgoingAuth')}.default", cfg.outgoing_auth.default))
    for path, strategy in strategies:
        check_strategy(strategy, cfg.auth_server, path)
        _check_subject(strategy, cfg, path)
    agg = at("aggregation")
    check_prefixes(names, cfg.aggregation.prefix_format, f"{agg}.conflictResolutionConfig.prefixFormat")
    for i, name in enumerate(cfg.aggregation.priority_order):
        if name not in known:
            raise ConfigError(f"{agg}.conflictResolutionConfig.priorityOrder[{i}]: no backend named {name!r}")
    for i, tools in enumerate(cfg.aggregation.tools):
        if tools.workload not in known:
            raise ConfigError(f"{agg}.tools[{i}].workload: no backend named {tools.workload!r} ({_list(names)})")
    for name in cfg.operational.per_workload_timeouts:
        if name not in known:
            raise ConfigError(f"{at('operational')}.timeouts.perWorkload.{name}: no backend named {name!r}")
    incoming = at("incomingAuth")
    if cfg.incoming_auth.primary_upstream_provider is not None:
        _check_provider(
            cfg.incoming_auth.primary_upstream_provider, cfg.auth_server, f"{incoming}.authz.primaryUpstreamProvider"
        )
    server = cfg.auth_server
    if server is not None:
        if cfg.incoming_auth.type != "oidc":
            raise ConfigError(
                f"{incoming}.type: must be oidc with authServerConfig (clients bring the tokens it issues)"
            )
        oidc = cfg.incoming_auth.oidc
        if oidc.issuer != server.issuer:
            raise ConfigError(
                f"{incoming}: the OIDC issuer {oidc.issuer!r} must be the authorization server's issuer "
                f"{server.issuer!r}"
            )
        if server.allowed_audiences and oidc.audience not in server.allowed_audiences:
            raise ConfigError(
                f"{incoming}: the audience {oidc.audience!r} is not in the authorization server's allowedAudiences"
            )


def check_prefixes(names: Sequence[str], prefix_format: str, where: str) -> None:
    """No backend's prefix may begin another's: with `{workload}-`, backend `github` advertising
    `enterprise-create_issue` would take the name of backend `github-enterprise`'s `create_issue`."""
    prefixes = sorted((prefix_format.replace("{workload}", name), name) for name in names)
    for (shorter, a), (longer, b) in itertools.pairwise(prefixes):
        if longer.startswith(shorter):
            raise ConfigError(
                f"{where}: the prefix of backend {a!r} ({shorter!r}) begins the prefix of backend {b!r} "
                f"({longer!r}), so a tool of one could be advertised under a name of the other; rename a backend "
                "or change prefixFormat"
            )


def check_strategy(strategy: BackendAuthStrategy, auth_server: AuthServerConfig | None, where: str) -> None:
    """An upstream provider a strategy names must be one of the embedded authorization server's upstreams."""
    if isinstance(strategy, UpstreamInject):
        _check_provider(strategy.provider_name, auth_server, f"{where}.upstreamInject.providerName")
    elif isinstance(strategy, TokenExchange) and strategy.subject_provider_name is not None:
        _check_provider(strategy.subject_provider_name, auth_server, f"{where}.tokenExchange.subjectProviderName")


def _check_subject(strategy: BackendAuthStrategy, cfg: VMCPConfig, where: str) -> None:
    """A token exchange without an embedded authorization server exchanges the caller's incoming token: there must
    be one (`anonymous` and `local` callers present none, so every call would fail)."""
    if not isinstance(strategy, TokenExchange) or cfg.auth_server is not None or cfg.incoming_auth.type == "oidc":
        return
    raise ConfigError(
        f"{where}.tokenExchange: the subject is the caller's incoming token, and incomingAuth.type "
        f"{cfg.incoming_auth.type} has none; use incomingAuth.type oidc, or authServerConfig (with "
        "subjectProviderName) to exchange the caller's upstream token"
    )


def _check_provider(name: str, auth_server: AuthServerConfig | None, where: str) -> None:
    if auth_server is None:
        raise ConfigError(f"{where}: names upstream provider {name!r}, but there is no embedded authorization server")
    providers = [u.name for u in auth_server.upstreams]
    if name not in providers:
        raise ConfigError(f"{where}: no upstream provider named {name!r} ({_list(providers)})")


def _list(names: Sequence[str]) -> str:
    return "known: " + ", ".join(names) if names else "none configured"


# -- values ------------------------------------------------------------------------------------------------------------


def backend_name(name: str, where: str) -> str:
    if len(name) > 63 or not _LABEL.fullmatch(name):
        raise ConfigError(
            f"{where}: must be a DNS label (lowercase letters, digits and hyphens, at most 63), got {name!r}"
        )
    return name


def http_transport(value: str, where: str) -> Literal["streamable-http", "sse"]:
    if value in ("", "streamable-http"):
        return "streamable-http"
    if value == "sse":
        return "sse"
    raise ConfigError(f"{where}: must be streamable-http or sse, got {value!r}")


def http_url(value: str, where: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: must be an absolute http(s) URL, got {value!r}")
    return value


def secure_url(value: str, where: str) -> str:
    """An http(s) URL that carries credentials: https, or http on loopback only."""
    http_url(value, where)
    parts = urlsplit(value)
    host = parts.hostname or ""
    if parts.scheme == "http" and not (host in ("localhost", "::1") or host.startswith("127.")):
        raise ConfigError(f"{where}: must be https (http only on loopback), got {value!r}")
    return value
