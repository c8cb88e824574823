"""The fields of an `MCPServer` or `MCPRemoteProxy` that configure ToolHive's proxy and pod, for `hivegate run -f`.

Each reader takes the resource's `spec` (a `Reader`) and either applies a field, warns that a field is not used here
(only where ignoring it is safe: it sizes or places the pod in a cluster), or fails naming the field. `warnings` is
the list a reader appends to, each entry `<path>: <why>`.

- `audit{enabled}` → `--enable-audit`.
- `telemetry.openTelemetry{enabled, endpoint, serviceName, headers [KEY=VALUE], insecure, tracing{enabled,
  samplingRate}, metrics{enabled}, useLegacyAttributes}` → the `--otel-*` settings (an endpoint without a scheme is
  `https://`, `http://` with `insecure`); OTLP metrics are not exported (an error when enabled);
  `useLegacyAttributes` is a warning. `telemetry.prometheus.enabled` needs `--diagnostics-port` (checked by the
  caller).
- Cluster-only, a warning naming each one given: `resources`, `podTemplateSpec`, `replicas`, `backendReplicas`,
  `serviceAccount`, `resourceOverrides`, `sessionAffinity`, `imagePullSecrets`, `trustProxyHeaders`.
  (`sessionStorage` is read by `standalone`: with redis, replicas share their sessions.)
- `permissionProfile`: `{type: builtin, name: network}` (what a local process has anyway) is a warning; any other
  profile is an error, since hivegate does not enforce it yet.
- Not supported yet (an error when given): `authzConfigRef` (MCPAuthzConfig), `toolConfigRef` (MCPToolConfig),
  `telemetryConfigRef` (MCPTelemetryConfig), `rateLimiting`, `webhookConfigRef`, `endpointPrefix`, `volumes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hivegate.config.reader import Reader
from hivegate.errors import ConfigError

__all__ = ["CLUSTER_ONLY", "NOT_SUPPORTED", "Telemetry", "audit", "cluster_only", "not_supported", "telemetry"]

CLUSTER_ONLY = ("resources", "podTemplateSpec", "replicas", "backendReplicas", "serviceAccount", "resourceOverrides",
                "sessionAffinity", "imagePullSecrets", "trustProxyHeaders")  # fmt: skip
NOT_SUPPORTED = {
    "authzConfigRef": "MCPAuthzConfig is not supported yet; use authzConfig",
    "toolConfigRef": "MCPToolConfig is not supported yet",
    "telemetryConfigRef": "MCPTelemetryConfig is not supported yet; use telemetry",
    "rateLimiting": "not supported yet",
    "webhookConfigRef": "MCPWebhookConfig is not supported yet",
    "endpointPrefix": "not supported yet",
    "volumes": "not supported yet",
}


@dataclass(frozen=True, slots=True)
class Telemetry:
    """`spec.telemetry` as `hivegate run`'s settings; `endpoint` None: no traces."""

    endpoint: str | None = None
    service_name: str | None = None
    sampling_rate: float = 1.0
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    prometheus: bool = False


def cluster_only(spec: Reader, warnings: list[str]) -> None:
    """Warn about each cluster-only field given, and check `permissionProfile`."""
    for key in CLUSTER_ONLY:
        if spec.get(key) not in (None, False, {}, []):
            warnings.append(f"{spec.at(key)}: used in a Kubernetes cluster only; not applied here")
    profile = spec.get("permissionProfile")
    if profile is not None:
        p = Reader(profile, spec.at("permissionProfile"))
        kind, name = p.text("type"), p.text("name")
        p.get("key")
        if (kind or "builtin") != "builtin" or name != "network":
            raise ConfigError(f"{p.where}: only {{type: builtin, name: network}} can run here (not enforced yet)")
        p.done()
        warnings.append(f"{p.where}: network: the server runs with this machine's network, as the profile allows")


def not_supported(spec: Reader) -> None:
    for key, why in NOT_SUPPORTED.items():
        if spec.get(key) not in (None, "", {}, []):
            raise ConfigError(f"{spec.at(key)}: {why}")


def audit(spec: Reader) -> bool | None:
    """`spec.audit.enabled`; None when `audit` is not given."""
    if spec.get("audit") is None:
        return None
    a = Reader(spec.section("audit"), spec.at("audit"))
    enabled = a.flag("enabled", default=False)
    a.done()
    return enabled


def telemetry(spec: Reader, warnings: list[str]) -> Telemetry | None:
    """`spec.telemetry`; None when it is not given."""
    if spec.get("telemetry") is None:
        return None
    t = Reader(spec.section("telemetry"), spec.at("telemetry"))
    prom = Reader(t.section("prometheus"), t.at("prometheus"))
    prometheus = prom.flag("enabled", default=False)
    prom.done()
    o = Reader(t.section("openTelemetry"), t.at("openTelemetry"))
    t.done()
    enabled = o.flag("enabled", default=False)
    endpoint, insecure, name = o.text("endpoint"), o.flag("insecure", default=False), o.text("serviceName") or None
    headers = _headers(o)
    tracing = Reader(o.section("tracing"), o.at("tracing"))
    traces, rate = tracing.flag("enabled", default=False), _rate(tracing)
    tracing.done()
    metrics = Reader(o.section("metrics"), o.at("metrics"))
    if metrics.flag("enabled", default=False) and enabled:
        raise ConfigError(f"{metrics.at('enabled')}: OTLP metrics are not exported; use telemetry.prometheus")
    metrics.done()
    if o.get("useLegacyAttributes") is not None:
        warnings.append(f"{o.at('useLegacyAttributes')}: hivegate's span attributes are fixed; not applied")
    o.done()
    if not (enabled and traces):
        return Telemetry(prometheus=prometheus)
    if not endpoint:
        raise ConfigError(f"{o.at('endpoint')}: required when tracing is enabled")
    if "://" not in endpoint:
        endpoint = f"{'http' if insecure else 'https'}://{endpoint}"
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{o.at('endpoint')}: expected host:port or an http(s) URL of an OTLP/HTTP collector")
    if parts.scheme == "http" and not insecure:
        raise ConfigError(f"{o.at('endpoint')}: an http:// collector needs insecure: true")
    return Telemetry(endpoint.rstrip("/"), name, rate, headers, prometheus)


def _headers(o: Reader) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for i, item in enumerate(o.strings("headers")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{o.at('headers')}[{i}]: expected KEY=VALUE")
        out.append((key.strip(), value.strip()))
    return tuple(out)


def _rate(tracing: Reader) -> float:
    value = tracing.get("samplingRate")
    try:
        rate = 0.05 if value in (None, "") else float(value)
    except (TypeError, ValueError):
        rate = -1.0
    if isinstance(value, bool) or not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{tracing.at('samplingRate')}: must be a number from 0 to 1")
    return rate
