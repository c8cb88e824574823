"""The other sections of a vMCP config, one parser each: backends, aggregation, operational, storage, telemetry.

`parse_backend` reads one of `backends[]`; `parse_aggregation`, `parse_operational`, `parse_session_storage`,
`parse_telemetry` and `parse_audit` read the section of their name. Each takes the section's mapping and the path
it was written at, checks every key (an unknown one is an error), fills in the defaults and returns the section's
dataclass from `model`. They serve the config file and the manifests alike (a `VirtualMCPServer`'s `spec.config`
holds these sections in the same keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from hivegate.authserver.secrets import SecretResolver, parse_secret_ref
from hivegate.backends.stdio_pool import parse_sharing
from hivegate.config.reader import Reader
from hivegate.errors import ConfigError
from hivegate.observe.audit import AuditConfig
from hivegate.vmcp.spec.model import (
    DEFAULT_PREFIX_FORMAT,
    Aggregation,
    BackendConfig,
    CircuitBreaker,
    FailureHandling,
    Operational,
    SessionStorage,
    Telemetry,
    ToolOverride,
    WorkloadTools,
)
from hivegate.vmcp.spec.values import backend_name, http_transport, http_url

__all__ = [
    "parse_aggregation",
    "parse_audit",
    "parse_backend",
    "parse_operational",
    "parse_session_storage",
    "parse_telemetry",
]


def parse_backend(data: Any, where: str) -> BackendConfig:
    stdio_keys = ("args", "env", "stdioIdleTimeout", "stdioSharing")
    r = Reader(data, where, known=("name", "url", "transport", "command", "metadata", *stdio_keys))
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
        idle, sharing = _stdio_settings(r, "stdioIdleTimeout", "stdioSharing")
        backend = BackendConfig(
            name, "stdio", command=command, args=tuple(r.strings("args")), env=r.string_map("env"), metadata=metadata,
            stdio_idle_timeout=idle, stdio_sharing=sharing,
        )  # fmt: skip
    else:
        for key in stdio_keys:
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


def _stdio_settings(r: Reader, idle_key: str, sharing_key: str) -> tuple[float | None, int | None]:
    """`stdioIdleTimeout` and `stdioSharing` (`per-session`, `shared` or `pool=N`); None where not given."""
    idle = r.duration(idle_key, default=-1.0)
    sharing = r.text(sharing_key)
    try:
        size = parse_sharing(sharing) if sharing else None
    except ValueError as exc:
        raise ConfigError(f"{r.at(sharing_key)}: {exc}") from None
    return (None if idle < 0 else idle), size


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
    idle, sharing = _stdio_settings(r, "stdioIdleTimeout", "stdioSharing")
    op = Operational(
        log_level=level,
        default_timeout=default,
        per_workload_timeouts=per_workload,
        failure_handling=FailureHandling(interval, check_timeout, threshold, reporting, mode, breaker),  # type: ignore[arg-type]
        stdio_idle_timeout=300.0 if idle is None else idle,
        stdio_sharing=sharing or 0,
    )
    r.done()
    return op


def parse_session_storage(
    data: Mapping[str, Any], where: str, resolver: SecretResolver, *, extras: bool = True
) -> SessionStorage:
    """`sessionStorage`; `extras`: hivegate's `url` and `ttl` too (the vMCP's), not only ToolHive's fields."""
    r = Reader(data, where)
    provider = r.choice("provider", ("memory", "redis")) or "memory"
    address, url = r.text("address") or None, (r.text("url") or None) if extras else None
    ref = r.get("passwordRef")
    password = resolver.resolve_text(parse_secret_ref(ref, r.at("passwordRef")), r.at("passwordRef")) if ref else None
    storage = SessionStorage(
        provider=provider,  # type: ignore[arg-type]
        address=address,
        url=url,
        db=r.integer("db", default=0, minimum=0),
        key_prefix=r.text("keyPrefix") or "hivegate:vmcp:",
        password=password,
        ttl=r.duration("ttl", default=1800.0, positive=True) if extras else 1800.0,
    )
    if provider == "redis":
        if (address is None) == (url is None):
            raise ConfigError(
                f"{where}: redis needs address (host:port) or url (redis://…), one of them"
                if extras
                else f"{r.at('address')}: required with provider redis (host:port)"
            )
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
