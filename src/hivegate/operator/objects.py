"""The Kubernetes objects of one workload: ServiceAccount, Role, RoleBinding, ConfigMap, Deployment, Service and,
for a stdio image, the StatefulSet its server runs in (and, added by `render`, for a group member whose upstream
credential a vMCP applies, the Service's `mcp` port and its NetworkPolicy: `upstream`).

The gateway container runs the hivegate image as `hivegate run --foreground -f /etc/hivegate/manifests --host
0.0.0.0 --port P --log-format json --log-output stdout --diagnostics-port 9090` (`hivegate vmcp serve -f …` for a
`VirtualMCPServer`): every line it writes is one JSON object on standard output (one stream for a log collector);
non-root, read-only root file system (an `emptyDir` at /tmp), no privilege escalation, every capability dropped,
probes `/readyz` (readiness) and `/health` (liveness). The pod template's annotation `hivegate.dev/config-checksum`
is the SHA-256 of the rendered manifests, so a change of the resource or of anything it references rolls the pods.
Each Secret the manifests reference is mounted read-only at `/etc/hivegate/secrets/<name>` (the layout
`$HIVEGATE_SECRETS_DIR` names); an image's `spec.secrets` become `secretKeyRef` environment variables. Every object
is owned by the resource (`ownerReferences`), so deleting it deletes them.

The resource's own pod settings: `spec.resources` size the `mcp` container (the gateway's when there is no image:
ToolHive's proxy container); `spec.serviceAccount` names the server's identity (the StatefulSet pod of a stdio
image, the gateway's pod of an HTTP image; the gateway's pod of an `MCPRemoteProxy` or `VirtualMCPServer`), in place
of the namespace's default (a stdio server's pod then mounts its token); `spec.replicas` sizes the Deployment (one
for a stdio server; not set when not given, so an autoscaler may); `podTemplateSpec` and `resourceOverrides` are
merged by `podspec`. A `VirtualMCPServer`'s `serviceType` is its Service's type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hivegate.errors import ConfigError
from hivegate.operator.podspec import apply_overrides, gateway_names, merge_template
from hivegate.operator.shape import Shape

__all__ = ["CHECKSUM_ANNOTATION", "MANAGED_BY", "Objects", "Settings", "gateway_args", "labels_of", "workload_objects"]

CHECKSUM_ANNOTATION = "hivegate.dev/config-checksum"
MANAGED_BY = "hivegate-operator"
MANIFESTS_DIR = "/etc/hivegate/manifests"
SECRETS_DIR = "/etc/hivegate/secrets"
METRICS_PORT = 9090


@dataclass(frozen=True, slots=True)
class Settings:
    """What the operator was told about the pods it makes."""

    image: str = "hivegate:latest"
    pull_policy: str = "IfNotPresent"
    resources: Mapping[str, Any] = field(
        default_factory=lambda: {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}}
    )


def labels_of(shape: Shape, component: str = "gateway") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "hivegate",
        "app.kubernetes.io/instance": shape.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "hivegate.dev/owner-kind": shape.kind,
    }


def _owner(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    meta = body.get("metadata") or {}
    return [
        {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _meta(body: Mapping[str, Any], shape: Shape, name: str, component: str = "gateway") -> dict[str, Any]:
    return {
        "name": name,
        "namespace": shape.namespace,
        "labels": labels_of(shape, component),
        "ownerReferences": _owner(body),
    }


def gateway_args(shape: Shape, *, anonymous: bool = False, manifests: str = MANIFESTS_DIR) -> list[str]:
    """The gateway container's command line (after the `hivegate` entry point); `anonymous`: the resource sets no
    incoming authentication, which ToolHive's proxy serves to anyone (hivegate wants that said: `--anonymous`)."""
    common = ["-f", manifests, "--host", "0.0.0.0", "--port", str(shape.listen), "--log-format", "json",
              "--log-output", "stdout"]  # fmt: skip
    if shape.kind == "VirtualMCPServer":
        return ["vmcp", "serve", *common]
    extra = ["--anonymous"] if anonymous else []
    return ["run", "--foreground", *common, "--diagnostics-port", str(METRICS_PORT), *extra]


_LOCKED_DOWN = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _gateway(shape: Shape, settings: Settings, secrets: Sequence[str], anonymous: bool) -> dict[str, Any]:
    probe = {"port": "http", "scheme": "HTTP"}
    ports = [{"name": "http", "containerPort": shape.listen, "protocol": "TCP"}]
    if shape.kind != "VirtualMCPServer":
        ports.append({"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"})
    return {
        "name": "gateway",
        "image": settings.image,
        "imagePullPolicy": settings.pull_policy,
        "args": gateway_args(shape, anonymous=anonymous),
        "env": [{"name": "HIVEGATE_SECRETS_DIR", "value": SECRETS_DIR}],
        "ports": ports,
        "readinessProbe": {"httpGet": {"path": "/readyz", **probe}, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {
            "httpGet": {"path": "/health", **probe},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "initialDelaySeconds": 5,
        },
        "resources": dict(settings.resources),
        "securityContext": {
            **_LOCKED_DOWN,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},  # its own: a template's pod-level profile does not apply
        },
        "volumeMounts": [
            {"name": "manifests", "mountPath": MANIFESTS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (an emptyDir: the root file system is read-only)
            *(
                {"name": f"secret-{i}", "mountPath": f"{SECRETS_DIR}/{s}", "readOnly": True}
                for i, s in enumerate(secrets)
            ),
        ],
    }


def _server_env(spec: Mapping[str, Any], shape: Shape) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    for i, e in enumerate(spec.get("env") or []):
        if isinstance(e, Mapping):
            if e.get("valueFrom") is not None:
                raise ConfigError(f"spec.env[{i}].valueFrom: not supported; use spec.secrets for Secret values")
            env.append({"name": str(e.get("name")), "value": str(e.get("value", ""))})
    if shape.server_port is not None:  # ToolHive's convention: the server learns its port and transport
        env += [{"name": n, "value": str(shape.server_port)} for n in ("MCP_PORT", "FASTMCP_PORT")]
        env.append({"name": "MCP_TRANSPORT", "value": shape.transport})
    for s in spec.get("secrets") or []:
        if isinstance(s, Mapping):
            name = str(s.get("targetEnvName") or s.get("key"))
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": s.get("name"), "key": s.get("key")}}})
    return env


def _server(spec: Mapping[str, Any], shape: Shape) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "mcp",
        "image": spec.get("image"),
        "args": [str(a) for a in spec.get("args") or []],
        "env": _server_env(spec, shape),
        "securityContext": dict(_LOCKED_DOWN),
    }
    if spec.get("resources"):
        container["resources"] = spec["resources"]
    if shape.server_port is not None:
        container["ports"] = [{"name": "mcp", "containerPort": shape.server_port, "protocol": "TCP"}]
    else:
        container.update(stdin=True, stdinOnce=False, tty=False)
    return container


def _rbac(body: Mapping[str, Any], shape: Shape) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    if shape.backend == "stdio-image":
        rules = [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods/attach"], "verbs": ["create", "get"]},
        ]
    rbac = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(body, shape, shape.runner)},
        {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": _meta(body, shape, shape.runner), "rules": rules},
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": _meta(body, shape, shape.runner),
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": shape.runner},
            "subjects": [{"kind": "ServiceAccount", "name": shape.runner, "namespace": shape.namespace}],
        },
    ]


@dataclass(frozen=True, slots=True)
class Objects:
    """The objects of a workload, in the order to apply them, and the notes on fields not (or partly) applied."""

    items: list[dict[str, Any]]
    notes: tuple[str, ...] = ()
    template_notes: tuple[str, ...] = ()


def _text(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"spec.{key}: must be a string")
    return value


def _cluster_notes(spec: Mapping[str, Any], shape: Shape) -> list[str]:
    """The fields the operator reads and cannot apply as asked, each with why."""
    notes = []
    why = {
        "http-image": "the server runs in each gateway pod (one per replica)",
        "stdio-image": "a stdio server runs in one pod, which the gateway attaches to",
    }.get(shape.backend, "the server does not run in a pod of the operator's")
    if spec.get("backendReplicas") is not None:
        notes.append(f"spec.backendReplicas: not applied: {why}")
    if spec.get("trustProxyHeaders"):
        notes.append(
            "spec.trustProxyHeaders: not applied: hivegate never builds its public URL from X-Forwarded-* "
            "headers (set the resource URL in the OIDC config)"
        )
    if shape.backend == "remote" and shape.kind == "MCPServer" and spec.get("serviceAccount"):
        notes.append("spec.serviceAccount: not applied: the server runs at spec.url, not in a pod of the operator's")
    return notes


def workload_objects(
    body: Mapping[str, Any],
    shape: Shape,
    manifests: str,
    checksum: str,
    secrets: Sequence[str],
    settings: Settings,
    *,
    anonymous: bool = False,
) -> Objects:
    """Every object of the workload `body`, in the order to apply them (`ConfigError` naming the field of a
    `podTemplateSpec`, `resourceOverrides` or `serviceAccount` that cannot be applied)."""
    spec = body.get("spec") or {}
    selector = {k: v for k, v in labels_of(shape).items() if k != "hivegate.dev/owner-kind"}
    account = _text(spec, "serviceAccount")
    gateway = _gateway(shape, settings, secrets, anonymous)
    has_image = shape.backend in ("http-image", "stdio-image")
    if spec.get("resources") and not has_image and shape.kind != "VirtualMCPServer":
        gateway["resources"] = dict(spec["resources"])  # no server container: ToolHive's proxy container's
    containers = [gateway]
    if shape.backend == "http-image":
        containers.append(_server(spec, shape))
    volumes: list[dict[str, Any]] = [
        {"name": "manifests", "configMap": {"name": shape.config_map}},
        {"name": "tmp", "emptyDir": {}},
        *({"name": f"secret-{i}", "secret": {"secretName": s}} for i, s in enumerate(secrets)),
    ]
    # the server's identity (an HTTP image's pod is the gateway's too: a pod has one, and the gateway needs no API
    # access then), or the gateway's for a proxy or vMCP; a stdio server's pod is its own
    in_gateway_pod = shape.backend in ("http-image", "vmcp") or shape.kind == "MCPRemoteProxy"
    runs_as = account if in_gateway_pod else None
    pod: dict[str, Any] = {
        "metadata": {"labels": labels_of(shape), "annotations": {CHECKSUM_ANNOTATION: checksum}},
        "spec": {
            "serviceAccountName": runs_as or shape.runner,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": containers,
            "volumes": volumes,
        },
    }
    if spec.get("imagePullSecrets"):
        pod["spec"]["imagePullSecrets"] = spec["imagePullSecrets"]
    template = spec.get("podTemplateSpec")
    template_notes: list[str] = []
    objects = [
        *_rbac(body, shape),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(body, shape, shape.config_map),
            "data": {"manifests.yaml": manifests},
        },
    ]
    if shape.backend == "stdio-image":
        server_labels = {**selector, "app.kubernetes.io/component": "mcp-server"}
        server_pod: dict[str, Any] = {
            "metadata": {"labels": labels_of(shape, "mcp-server")},
            "spec": {"automountServiceAccountToken": False, "containers": [_server(spec, shape)]},
        }
        if account:
            server_pod["spec"] = {"serviceAccountName": account, "containers": server_pod["spec"]["containers"]}
        if spec.get("imagePullSecrets"):
            server_pod["spec"]["imagePullSecrets"] = spec["imagePullSecrets"]
        if template is not None:
            template_notes = merge_template(server_pod, template, server="mcp", gateway=())
        objects.append(
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": _meta(body, shape, shape.name, "mcp-server"),
                "spec": {
                    "replicas": 1,
                    "serviceName": f"mcp-{shape.name}-headless",
                    "selector": {"matchLabels": server_labels},
                    "template": server_pod,
                },
            }
        )
    elif template is not None:
        server = "mcp" if shape.backend == "http-image" else None
        template_notes = merge_template(pod, template, server=server, gateway=gateway_names(shape))
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(body, shape, shape.name),
        "spec": {"selector": {"matchLabels": selector}, "template": pod},
    }
    if spec.get("replicas") is not None or shape.backend == "stdio-image":
        deployment["spec"] = {"replicas": shape.replicas, **deployment["spec"]}
    objects.append(deployment)
    service_spec: dict[str, Any] = {
        "selector": selector,
        "ports": [{"name": "http", "port": shape.port, "targetPort": "http", "protocol": "TCP"}],
        "sessionAffinity": str(spec.get("sessionAffinity") or "ClientIP"),
    }
    if shape.kind == "VirtualMCPServer" and spec.get("serviceType"):
        service_spec["type"] = str(spec["serviceType"])
    objects.append(
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(body, shape, shape.service), "spec": service_spec}
    )
    notes = _cluster_notes(spec, shape)
    if shape.kind != "VirtualMCPServer" and spec.get("resourceOverrides") is not None:
        notes += apply_overrides(objects, spec["resourceOverrides"])
    return Objects(objects, tuple(notes), tuple(template_notes))
