"""Loading a vMCP config: `load_vmcp_config`, `parse_vmcp_config` and the top-level keys they read.

This module holds the top-level flow: it reads the document, hands each section to its parser (`auth`,
`sections`), fills the top-level keys (`name`, `groupRef`, `server`, `metadata`), refuses the keys hivegate
cannot honour yet and runs the cross-reference checks (`checks`). Below is the reference of every key, wherever
it is parsed.

Configuration of the virtual MCP server (vMCP), in the keys of ToolHive's vMCP config (`pkg/vmcp/config`).

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
- `authServerConfig`: the embedded authorization server, as `hivegate.authserver.settings` reads it.
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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hivegate.authserver.secrets import SecretResolver
from hivegate.authserver.settings import parse_auth_server_config
from hivegate.config.reader import Reader
from hivegate.config.syntax import syntax_error
from hivegate.errors import ConfigError
from hivegate.vmcp.spec.auth import parse_incoming_auth, parse_outgoing_auth
from hivegate.vmcp.spec.checks import check_references, check_unique_backends
from hivegate.vmcp.spec.model import DEFAULT_GROUP, DEFAULT_HOST, DEFAULT_PATH, DEFAULT_PORT, VMCPConfig
from hivegate.vmcp.spec.sections import (
    parse_aggregation,
    parse_audit,
    parse_backend,
    parse_operational,
    parse_session_storage,
    parse_telemetry,
)

__all__ = ["load_vmcp_config", "parse_vmcp_config", "reject_unsupported"]

_TOP_KEYS = ("name", "groupRef", "backends", "incomingAuth", "authServerConfig", "outgoingAuth", "aggregation",
             "operational", "sessionStorage", "telemetry", "audit", "server", "metadata", "compositeTools",
             "compositeToolRefs", "optimizer")  # fmt: skip


def load_vmcp_config(path: str | Path, *, resolver: SecretResolver | None = None) -> VMCPConfig:
    """Read a vMCP config file (one YAML document); errors read `<file>: <path>: <problem>`."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"vmcp config {p}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise syntax_error(f"vmcp config {p}", exc) from None
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


def reject_unsupported(r: Reader) -> None:
    """The ToolHive keys hivegate reads but cannot honour yet: an error when they hold anything."""
    for key in ("compositeTools", "compositeToolRefs", "optimizer"):
        if r.get(key) not in (None, [], {}):
            raise ConfigError(f"{r.at(key)}: not supported yet")
