"""The `NetworkPolicy` that keeps an HTTP image's server behind its gateway.

An `MCPServer` with an HTTP `image:` runs the server as the `mcp` container of the gateway's pod, and the server
listens on the pod's address: without a policy any pod of the cluster could call it directly, around the
gateway's authentication, Cedar policies and audit. `gateway_only(objects, shape)` adds `<name>-gateway-only`,
which admits the pod's traffic on the gateway's own ports only (`http`, `metrics`). The gateway reaches the server
over the pod's loopback, which no NetworkPolicy filters. Policies add up: the `<name>-mcp-direct` policy of a group
member whose vMCP calls the server itself (`upstream`) admits the `mcp` port for that vMCP alone. A port of a
container a `podTemplateSpec` adds needs a policy of its own, and a cluster without a network plugin that enforces
policies does not apply any of this.
"""

from __future__ import annotations

from typing import Any

from hivegate.operator.objects import labels_of
from hivegate.operator.shape import Shape

__all__ = ["GATEWAY_PORTS", "gateway_only", "gateway_policy_name", "ingress_policy"]


def gateway_policy_name(shape: Shape) -> str:
    return f"{shape.name}-gateway-only"


GATEWAY_PORTS: list[dict[str, Any]] = [{"port": "http", "protocol": "TCP"}, {"port": "metrics", "protocol": "TCP"}]


def ingress_policy(objects: list[dict[str, Any]], shape: Shape, name: str, ingress: list[dict[str, Any]]) -> None:
    """Add the NetworkPolicy `name` for the pods of `shape`'s Service, admitting `ingress` (in place)."""
    service = next(o for o in objects if o["kind"] == "Service")
    objects.append({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {**service["metadata"], "name": name, "labels": labels_of(shape)},
        "spec": {
            "podSelector": {"matchLabels": dict(service["spec"]["selector"])},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    })  # fmt: skip


def gateway_only(objects: list[dict[str, Any]], shape: Shape) -> None:
    """Add the policy that admits only the gateway's ports to the pods of `shape`'s Service (in place)."""
    ingress_policy(objects, shape, gateway_policy_name(shape), [{"ports": list(GATEWAY_PORTS)}])
