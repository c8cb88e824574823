"""The configuration of the virtual MCP server (vMCP), in the keys of ToolHive's vMCP config: model, parsing, checks.

A map of the package (the reference of every key is in `load`'s docstring):
- `model`: the frozen dataclasses of a `VMCPConfig` (backends, auth strategies, aggregation, …) and their defaults;
- `load`: `load_vmcp_config` and `parse_vmcp_config`, the top-level flow and keys;
- `auth`: `incomingAuth` (OIDC, Cedar) and `outgoingAuth` with its strategies;
- `sections`: `backends[]`, `aggregation`, `operational`, `sessionStorage`, `telemetry` and `audit`;
- `checks`: the cross-references, checked once every section is parsed;
- `values`: checks of single values (backend names, transports, URLs).

Kubernetes manifests give the same `VMCPConfig` through `hivegate.vmcp.manifests`, which reuses the section
parsers and checks exported here.
"""

from __future__ import annotations

from hivegate.vmcp.spec.auth import TOKEN_TYPES, checked_oidc, parse_strategy
from hivegate.vmcp.spec.checks import check_references, check_strategy, check_unique_backends
from hivegate.vmcp.spec.load import load_vmcp_config, parse_vmcp_config, reject_unsupported
from hivegate.vmcp.spec.model import (
    DEFAULT_GROUP,
    DEFAULT_PORT,
    Aggregation,
    BackendAuthStrategy,
    BackendConfig,
    CircuitBreaker,
    ContainerSpec,
    FailureHandling,
    HeaderInjection,
    IncomingAuth,
    Operational,
    OutgoingAuth,
    ServerAuth,
    SessionStorage,
    Telemetry,
    TokenExchange,
    ToolOverride,
    Unauthenticated,
    UpstreamInject,
    VMCPConfig,
    WorkloadTools,
)
from hivegate.vmcp.spec.sections import (
    parse_aggregation,
    parse_audit,
    parse_backend,
    parse_operational,
    parse_session_storage,
    parse_telemetry,
)
from hivegate.vmcp.spec.values import backend_name, http_transport, http_url, secure_url

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_PORT",
    "TOKEN_TYPES",
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
    "backend_name",
    "check_references",
    "check_strategy",
    "check_unique_backends",
    "checked_oidc",
    "http_transport",
    "http_url",
    "load_vmcp_config",
    "parse_aggregation",
    "parse_audit",
    "parse_backend",
    "parse_operational",
    "parse_session_storage",
    "parse_strategy",
    "parse_telemetry",
    "parse_vmcp_config",
    "reject_unsupported",
    "secure_url",
]
