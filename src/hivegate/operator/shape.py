"""Where the parts of one workload run: the gateway's ports, its Service, and where the MCP server runs.

An `MCPServer`'s server runs:
- `url` (or the `hivegate.dev/command` annotation): wherever it already runs; the gateway is in front of it;
- an `image:` speaking `sse` or `streamable-http`: as the `mcp` container of the gateway's pod, listening on
  `mcpPort` (else `targetPort`, else the proxy port); when that is the proxy port too, the gateway listens on the
  next port and the Service maps the proxy port to it;
- an `image:` speaking stdio: in a pod of its own (a StatefulSet of one), its stdin attached by the gateway through
  `pods/attach`; then the gateway runs one replica.
The proxy port is `proxyPort` (or ToolHive's older `port`), 8080 by default; a `VirtualMCPServer` serves on 4483.
Names follow ToolHive's: Service `mcp-<name>-proxy` (`mcp-<name>-remote-proxy`, `vmcp-<name>`), ServiceAccount
`<name>-proxy-runner`, Deployment and StatefulSet `<name>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hivegate.errors import ConfigError

__all__ = ["VMCP_PORT", "Shape", "shape_of"]

VMCP_PORT = 4483
DEFAULT_PORT = 8080
Backend = Literal["remote", "http-image", "stdio-image", "vmcp"]


@dataclass(frozen=True, slots=True)
class Shape:
    kind: str
    name: str
    namespace: str
    backend: Backend
    service: str
    port: int  # the Service's port, what clients connect to
    listen: int  # the gateway container's port
    path: str  # /mcp, or /sse for a stdio server with proxyMode sse
    server_port: int | None  # the `mcp` container's port (an HTTP image)
    transport: str  # what the server speaks
    replicas: int

    @property
    def url(self) -> str:
        return f"http://{self.service}.{self.namespace}.svc.cluster.local:{self.port}{self.path}"

    @property
    def direct_port(self) -> int | None:
        """The Service's port `mcp`, straight to an HTTP image's server (used by a vMCP that applies the member's
        upstream credential: `hivegate.operator.upstream`): the server's port, unless that is the Service's `http`."""
        if self.server_port is None:
            return None
        return self.server_port if self.server_port != self.port else self.port + 1

    @property
    def runner(self) -> str:
        return f"{self.name}-proxy-runner"

    @property
    def config_map(self) -> str:
        return f"{self.name}-manifests"


def _port(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise ConfigError(f"spec.{key}: must be a port number between 1 and 65535, got {value!r}")
    return value


def shape_of(body: Mapping[str, Any]) -> Shape:
    """The shape of an `MCPServer`, `MCPRemoteProxy` or `VirtualMCPServer` (`ConfigError` naming the field)."""
    kind = str(body.get("kind"))
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace") or "default")
    spec = body.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise ConfigError("spec: must be a mapping")
    replicas = spec.get("replicas", 1)
    if replicas is None:
        replicas = 1
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ConfigError(f"spec.replicas: must be a whole number, got {replicas!r}")
    if kind == "VirtualMCPServer":
        return Shape(kind, name, namespace, "vmcp", f"vmcp-{name}", VMCP_PORT, VMCP_PORT, "/mcp", None, "", replicas)
    proxy = _port(spec, "proxyPort") or _port(spec, "port") or DEFAULT_PORT
    transport = str(spec.get("transport") or "")
    path = "/sse" if spec.get("proxyMode") == "sse" else "/mcp"
    if kind == "MCPRemoteProxy":
        return Shape(kind, name, namespace, "remote", f"mcp-{name}-remote-proxy", proxy, proxy, "/mcp", None,
                     transport or "streamable-http", replicas)  # fmt: skip
    annotations = meta.get("annotations") or {}
    service = f"mcp-{name}-proxy"
    if spec.get("url") or annotations.get("hivegate.dev/command") or not spec.get("image"):
        return Shape(kind, name, namespace, "remote", service, proxy, proxy, path, None, transport, replicas)
    if transport in ("", "stdio"):
        return Shape(kind, name, namespace, "stdio-image", service, proxy, proxy, path, None, "stdio", 1)
    if transport not in ("sse", "streamable-http"):
        raise ConfigError(f"spec.transport: stdio, sse or streamable-http, got {transport!r}")
    server = _port(spec, "mcpPort") or _port(spec, "targetPort") or proxy
    listen = proxy if server != proxy else proxy + 1
    return Shape(kind, name, namespace, "http-image", service, proxy, listen, "/mcp", server, transport, replicas)
