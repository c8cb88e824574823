"""The virtual MCP server (vMCP): one authenticated endpoint in front of many MCP backends.

Configuration comes from a vMCP config file (`load_vmcp_config`, ToolHive's vMCP keys) or from Kubernetes-shaped
manifests (`hivegate.vmcp.manifests.load_manifests`); both give a `VMCPConfig`.
"""

from __future__ import annotations

from hivegate.vmcp.spec import (
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
    SessionStorage,
    Telemetry,
    TokenExchange,
    ToolOverride,
    Unauthenticated,
    UpstreamInject,
    VMCPConfig,
    WorkloadTools,
    load_vmcp_config,
    parse_vmcp_config,
)

__all__ = [
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
