"""Group members whose outgoing credential a `VirtualMCPServer` applies: an upstream provider's token.

An `MCPServer` (or `MCPRemoteProxy`) of an `MCPGroup` whose `spec.externalAuthConfigRef` is an `upstreamInject`
(or a `tokenExchange` with `subjectProviderName`) names an upstream provider of an embedded authorization server it
does not run itself (no `spec.authServerRef`): the caller's token from that provider exists only in the
`VirtualMCPServer` whose authorization server logged the caller in. As in ToolHive (whose per-server proxy skips
such a strategy, and whose vMCP applies it), the strategy is applied by a vMCP of the group that discovers it:

- the member runs: its own gateway, without that outgoing strategy (`Deferred`), and the condition
  `ExternalAuthConfigValidated` (reason `AppliedByVirtualMCPServer`, an Event as it appears) says that only calls
  through a `VirtualMCPServer` of its group carry the upstream credential;
- hivegate's gateway never forwards a caller's credential, so a token the vMCP sent to the member's gateway would
  stop there. The vMCP reaches the server itself instead, when (and only when) it applies the member's strategy
  (`spec.outgoingAuth` source `discovered`, or `backends.<member>.type: discovered`): an HTTP `image:` through the
  Service's second port, `mcp` (`Shape.direct_port`, straight to the `mcp` container), a `spec.url` (or
  `remoteUrl`) at that URL. The vMCP then enforces the member's own `oidcConfig`/`oidcConfigRef` and `authzConfig`
  as its gateway would (`hivegate.vmcp.ownproxy`), so going around the gateway goes around none of its checks;
- no one else may use the `mcp` port: the operator writes a `NetworkPolicy` (`<name>-mcp-direct`, deleted again when
  the port goes) for the member's
  pods that admits the `mcp` port only from the gateway pods of the group's `VirtualMCPServer`s (same namespace,
  label `hivegate.dev/group`), and the gateway's `http` and `metrics` ports from anywhere. NetworkPolicies add up:
  one of the cluster's own that admits all traffic to these pods opens the port again, and a cluster without a
  network plugin that enforces them does not apply it (a port of a container a `podTemplateSpec` adds is not
  admitted either: add a NetworkPolicy of your own for it);
- a stdio server (a stdio `image:`, or one started by `hivegate.dev/command`) has no HTTP request to carry a token:
  neither its gateway nor a vMCP can give it one. It runs without it; the condition (reason `NotDeliverable`, a
  Warning Event) says so, and the vMCP sends it no credential. Attaching the vMCP to the server's pod
  (`pods/attach`) would not help: stdin carries no headers, and the member's gateway already holds that stream.

A member of no group, or one whose `authServerRef` is the authorization server, is not deferred: its own gateway
applies the strategy or refuses it as before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hivegate.errors import ConfigError
from hivegate.operator.kube import KubeClient
from hivegate.operator.manifests import spec_hash
from hivegate.operator.netpol import GATEWAY_PORTS, ingress_policy
from hivegate.operator.shape import Shape

__all__ = ["GROUP_LABEL", "Deferred", "applies_discovered", "deferred_of", "group_label", "open_direct",
           "policy_name"]  # fmt: skip

GROUP_LABEL = "hivegate.dev/group"
_LABEL_VALUE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


@dataclass(frozen=True, slots=True)
class Deferred:
    """A member's strategy that a vMCP of `group` applies. `url`/`transport`: where that vMCP reaches the server
    (None: a stdio server, which no one can give a token)."""

    config: str  # the MCPExternalAuthConfig
    field: str  # upstreamInject.providerName | tokenExchange.subjectProviderName
    provider: str
    group: str
    url: str | None
    transport: str
    config_hash: str = ""  # the config's `spec_hash`, for the member's `status.externalAuthConfigHash`

    def message(self, shape: Shape) -> str:
        said = (f"spec.externalAuthConfigRef: MCPExternalAuthConfig {self.config!r} ({self.field} {self.provider!r}) "
                "names an upstream provider of a VirtualMCPServer's embedded authorization server")  # fmt: skip
        if self.url is None:
            return (f"{said}: not applied: a stdio server has no HTTP request to carry the upstream token, so neither "
                    "this gateway nor a VirtualMCPServer sends it (serve the image over streamable-http to receive "
                    "it)")  # fmt: skip
        return (f"{said}: this gateway ({shape.url}) runs without it; only calls through a VirtualMCPServer of "
                f"MCPGroup {self.group!r} that discovers it carry the upstream credential (it reaches the server at "
                f"{self.url})")  # fmt: skip


def _provider(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    """The upstream provider an `MCPExternalAuthConfig`'s strategy names, with the field that names it."""
    kind = spec.get("type")
    section = spec.get(str(kind)) if isinstance(kind, str) else None
    key = {"upstreamInject": "providerName", "tokenExchange": "subjectProviderName"}.get(str(kind))
    if key is None or not isinstance(section, Mapping):
        return None
    name = section.get(key)
    return (f"{kind}.{key}", name) if isinstance(name, str) and name else None


def _direct(body: Mapping[str, Any], shape: Shape) -> tuple[str | None, str]:
    spec = body.get("spec") or {}
    if shape.backend == "http-image":
        path = "/sse" if shape.transport == "sse" else "/mcp"
        host = f"{shape.service}.{shape.namespace}.svc.cluster.local"
        return f"http://{host}:{shape.direct_port}{path}", shape.transport
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    url = spec.get("url") or spec.get("remoteUrl") or spec.get("remoteURL")
    if shape.backend == "remote" and isinstance(url, str) and url and not annotations.get("hivegate.dev/command"):
        return url, "sse" if spec.get("transport") == "sse" else "streamable-http"
    return None, "stdio"


async def deferred_of(api: KubeClient, body: Mapping[str, Any], shape: Shape, group: str | None) -> Deferred | None:
    """The member's strategy when a vMCP of its group applies it (`ConfigError` when its config is missing)."""
    spec = body.get("spec") or {}
    ref = spec.get("externalAuthConfigRef")
    if group is None or shape.kind == "VirtualMCPServer" or spec.get("authServerRef") or not isinstance(ref, Mapping):
        return None
    name = ref.get("name")
    if not isinstance(name, str) or not name:
        return None  # the loader names the field
    config = await api.get("MCPExternalAuthConfig", shape.namespace, name)
    if config is None or (config.get("metadata") or {}).get("deletionTimestamp"):
        raise ConfigError(
            f"spec.externalAuthConfigRef.name: MCPExternalAuthConfig {name!r} not found in namespace {shape.namespace}"
        )
    named = _provider(config.get("spec") or {})
    if named is None:
        return None
    url, transport = _direct(body, shape)
    return Deferred(name, named[0], named[1], group, url, transport, spec_hash(config))


def applies_discovered(vmcp_spec: Mapping[str, Any], member: str) -> bool:
    """Whether a `VirtualMCPServer` gives `member` the strategy it discovers from the member's own spec."""
    outgoing = vmcp_spec.get("outgoingAuth") or {}
    if not isinstance(outgoing, Mapping):
        return False
    backends = outgoing.get("backends") or {}
    entry = backends.get(member) if isinstance(backends, Mapping) else None
    if isinstance(entry, Mapping):
        return entry.get("type") == "discovered"
    return (outgoing.get("source") or "discovered") == "discovered"


def group_label(group: str) -> str:
    """`group` as a label value (a name too long or not fit for one: a digest of it)."""
    if len(group) <= 63 and _LABEL_VALUE.fullmatch(group):
        return group
    return "g-" + hashlib.sha256(group.encode()).hexdigest()[:40]


def policy_name(shape: Shape) -> str:
    """The member's `NetworkPolicy` for its `mcp` port."""
    return f"{shape.name}-mcp-direct"


def open_direct(objects: list[dict[str, Any]], shape: Shape, deferred: Deferred) -> None:
    """An HTTP image's Service gets the port `mcp` to the server, and its pods the `NetworkPolicy` that admits that
    port from the group's vMCP gateways only (in place)."""
    service = next(o for o in objects if o["kind"] == "Service")
    service["spec"]["ports"].append({"name": "mcp", "port": shape.direct_port, "targetPort": "mcp", "protocol": "TCP"})
    vmcps = {"app.kubernetes.io/component": "gateway", "hivegate.dev/owner-kind": "VirtualMCPServer",
             GROUP_LABEL: group_label(deferred.group)}  # fmt: skip
    ingress_policy(objects, shape, policy_name(shape), [
        {"ports": list(GATEWAY_PORTS)},
        {"ports": [{"port": "mcp", "protocol": "TCP"}], "from": [{"podSelector": {"matchLabels": vmcps}}]},
    ])  # fmt: skip
