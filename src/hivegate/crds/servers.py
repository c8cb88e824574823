"""`MCPServer` and `MCPRemoteProxy`: one MCP server behind its own gateway (hivegate in place of ToolHive's proxy).

The two share the gateway's fields (`proxy_fields`): authentication, authorization, audit, telemetry, the pod and
service. `MCPServer` adds the server itself (an image, a URL, its arguments and environment); `MCPRemoteProxy` adds
the remote URL and the headers sent to it. The readers are `hivegate.vmcp.manifests.mcpserver` (as a vMCP backend)
and `standalone` with `proxyfields` (`hivegate run -f`).
"""

from __future__ import annotations

from hivegate.crds.common import (
    HTTP_URL,
    authz_config,
    group_ref,
    legacy_oidc_config,
    name_ref,
    oidc_config_ref,
    secret_ref,
    status,
)
from hivegate.crds.crd import READY, Column, Kind
from hivegate.crds.schema import Node, array, boolean, int_or_string, integer, map_of, obj, opaque, rule, string

__all__ = ["MCP_REMOTE_PROXY", "MCP_SERVER"]

_PORT_MAX = 65535
_WORKLOAD_PHASES = ("Pending", "Ready", "Failed", "Terminating", "Stopped")


def _telemetry() -> Node:
    return obj(
        "Traces to an OTLP collector and Prometheus metrics (ToolHive's older inline form; hivegate applies it).",
        {
            "openTelemetry": obj(
                "OpenTelemetry export.",
                {
                    "enabled": boolean("", default=False),
                    "endpoint": string("host:port or an http(s) URL of an OTLP/HTTP collector."),
                    "serviceName": string(),
                    "headers": array(string(), "KEY=VALUE headers sent to the collector."),
                    "insecure": boolean("Plain http to the collector.", default=False),
                    "tracing": obj(
                        "",
                        {
                            "enabled": boolean("", default=False),
                            "samplingRate": string("From 0 to 1.", default="0.05", pattern=r"^(0(\.\d+)?|1(\.0+)?)$"),
                        },
                    ),
                    "metrics": obj("OTLP metrics: not exported.", {"enabled": boolean("", default=False)}),
                    "useLegacyAttributes": boolean("Accepted; hivegate's span attributes are fixed."),
                },
            ),
            "prometheus": obj("Metrics at /metrics.", {"enabled": boolean("", default=False)}),
        },
    )


def _session_storage() -> Node:
    return obj(
        "Where the gateway records client sessions so that its replicas share them (redis; a streamable-http "
        "server keeps its own).",
        {
            "provider": string("", enum=("memory", "redis")),
            "address": string("host:port of Redis.", min_length=1),
            "db": integer("", minimum=0, default=0),
            "keyPrefix": string(),
            "passwordRef": secret_ref("The Redis password."),
        },
        required=("provider",),
        rules=[rule("self.provider == 'redis' ? has(self.address) : true", "address is required for redis")],
    )


def _resources() -> Node:
    quantity = obj("", {"cpu": int_or_string("e.g. 100m or 1"), "memory": int_or_string("e.g. 128Mi")})
    return obj(
        "The resources of the MCP server's container (an image's `mcp` container; without an image, the gateway's).",
        {"limits": quantity, "requests": quantity},
    )


def _resource_overrides() -> Node:
    def metadata(description: str, extra: dict[str, Node] | None = None) -> Node:
        fields = {"annotations": map_of(string(), "Added; the operator's own keys stay."),
                  "labels": map_of(string(), "Added; the operator's own keys stay.")}  # fmt: skip
        return obj(description, {**fields, **(extra or {})})

    env = obj("", {"name": string("", min_length=1), "value": string()}, required=("name",))
    deployment = metadata(
        "The gateway's Deployment.",
        {
            "podTemplateMetadataOverrides": metadata("Its pod template's labels and annotations."),
            "env": array(env, "Environment variables of the gateway container (not the operator's own)."),
            "imagePullSecrets": array(obj("", {"name": string()}, required=("name",)), "Added to the gateway's pod."),
        },
    )
    return obj(
        "Labels, annotations and environment of the objects the operator makes (ToolHive's resourceOverrides).",
        {"proxyDeployment": deployment, "proxyService": metadata("The gateway's Service.")},
    )


def _volume() -> Node:
    return obj(
        "A host path mounted into the server.",
        {"name": string(), "hostPath": string(), "mountPath": string(), "readOnly": boolean("", default=False)},
        required=("name", "hostPath", "mountPath"),
    )


def proxy_fields() -> dict[str, Node]:
    """The fields of the gateway in front of the server, on both kinds."""
    not_yet = "Not supported by hivegate yet: the operator reports it in a condition."
    return {
        "proxyPort": integer("The port the gateway listens on.", default=8080, minimum=1, maximum=_PORT_MAX),
        "groupRef": group_ref(),
        "oidcConfig": legacy_oidc_config(),
        "oidcConfigRef": oidc_config_ref(),
        "authzConfig": authz_config(),
        "authzConfigRef": name_ref(f"An MCPAuthzConfig. {not_yet}", "MCPAuthzConfig"),
        "externalAuthConfigRef": name_ref("How the gateway authenticates to the server.", "MCPExternalAuthConfig"),
        "authServerRef": obj(
            "An MCPExternalAuthConfig of type embeddedAuthServer: the gateway runs that authorization server.",
            {
                "kind": string("", enum=("MCPExternalAuthConfig",), default="MCPExternalAuthConfig"),
                "name": string("", min_length=1),
            },
            required=("name",),
        ),
        "audit": obj("Audit events.", {"enabled": boolean("", default=False)}),
        "telemetry": _telemetry(),
        "telemetryConfigRef": obj(
            f"An MCPTelemetryConfig. {not_yet}", {"name": string("", min_length=1), "serviceName": string()}
        ),
        "toolConfigRef": name_ref(f"An MCPToolConfig. {not_yet}", "MCPToolConfig"),
        "webhookConfigRef": name_ref(f"An MCPWebhookConfig. {not_yet}", "MCPWebhookConfig"),
        "rateLimiting": opaque(f"Rate limits. {not_yet}"),
        "endpointPrefix": string(f"A path prefix. {not_yet}"),
        "volumes": array(_volume(), f"Host paths mounted into the server. {not_yet}"),
        "resources": _resources(),
        "podTemplateSpec": opaque(
            "Merged into the pod the server runs in (a stdio image's own pod, else the gateway's): its `mcp` "
            "container, pod settings, sidecars and volumes; the gateway's container takes resources, env and "
            "volumeMounts only."
        ),
        "resourceOverrides": _resource_overrides(),
        "replicas": integer(
            "Gateway replicas (one for a stdio server; not set: left to an autoscaler). Several share sessions "
            "through sessionStorage with redis.",
            minimum=0,
        ),
        "serviceAccount": string(
            "An existing ServiceAccount the server's pod runs as (an MCPRemoteProxy: the gateway's pod)."
        ),
        "sessionAffinity": string("The Service's session affinity.", enum=("ClientIP", "None"), default="ClientIP"),
        "sessionStorage": _session_storage(),
        "imagePullSecrets": array(obj("", {"name": string()}), "Secrets for pulling the images."),
        "trustProxyHeaders": boolean("Trust X-Forwarded-* from the ingress in front.", default=False),
    }


_ONE_OIDC = rule(
    "!(has(self.oidcConfig) && has(self.oidcConfigRef))", "oidcConfig and oidcConfigRef are mutually exclusive"
)
_ONE_AUTHZ = rule(
    "!(has(self.authzConfig) && has(self.authzConfigRef))", "authzConfig and authzConfigRef are mutually exclusive"
)


def _server_spec() -> Node:
    env = obj(
        "An environment variable of the server.",
        {
            "name": string("", min_length=1),
            "value": string(),
            "valueFrom": opaque("Not supported: use spec.secrets for values from Secrets."),
        },
        required=("name",),
    )
    secret = obj(
        "A Secret's key as an environment variable of the server.",
        {
            "name": string("The Secret's name.", min_length=1),
            "key": string("The key within it.", min_length=1),
            "targetEnvName": string("The variable's name (default: the key)."),
        },
        required=("name", "key"),
    )
    fields: dict[str, Node] = {
        **proxy_fields(),
        "image": string("The server's container image."),
        "url": string("hivegate's: a server that already runs at this URL, in place of an image.", pattern=HTTP_URL),
        "transport": string("How the server speaks MCP.", enum=("stdio", "streamable-http", "sse"), default="stdio"),
        "args": array(string(), "Arguments to the image's entry point."),
        "env": array(env, "Environment variables of the server."),
        "secrets": array(secret, "Secrets as environment variables of the server."),
        "mcpPort": integer("The port an HTTP server listens on in its container.", minimum=1, maximum=_PORT_MAX),
        "targetPort": integer("The older name of mcpPort.", minimum=1, maximum=_PORT_MAX),
        "port": integer("The older name of proxyPort.", minimum=1, maximum=_PORT_MAX),
        "proxyMode": string(
            "How clients reach a stdio server.", enum=("sse", "streamable-http"), default="streamable-http"
        ),
        "tools": array(string(), "Only these tools are offered (ToolHive's older filter)."),
        "backendReplicas": integer("Replicas of an HTTP server's own pod.", minimum=0),
        "permissionProfile": obj(
            "What the server may do: hivegate runs {type: builtin, name: network} only.",
            {"type": string("", enum=("builtin", "configmap"), default="builtin"), "name": string(), "key": string()},
            required=("name",),
        ),
    }
    return obj(
        "The server and the gateway in front of it.",
        fields,
        rules=[
            _ONE_OIDC,
            _ONE_AUTHZ,
            rule(
                "!(has(self.port) && has(self.proxyPort)) || self.port == self.proxyPort",
                "port is the older name of proxyPort: keep one",
            ),
        ],
    )


def _remote_spec() -> Node:
    header = obj(
        "A header whose value is in a Secret.",
        {"headerName": string("", min_length=1), "valueSecretRef": secret_ref("The header's value.")},
        required=("headerName", "valueSecretRef"),
    )
    fields: dict[str, Node] = {
        **proxy_fields(),
        "remoteUrl": string("The remote MCP server's URL.", pattern=HTTP_URL),
        "remoteURL": string("The older spelling of remoteUrl.", pattern=HTTP_URL),
        "transport": string("How it speaks MCP.", enum=("streamable-http", "sse"), default="streamable-http"),
        "allowPrivateEndpoint": boolean("The remote URL may be a private or loopback address.", default=False),
        "headerForward": obj(
            "Headers the gateway adds to every request to the remote server.",
            {
                "addPlaintextHeaders": map_of(string(), "Headers with their values."),
                "addHeadersFromSecret": array(header, "Headers with values from Secrets."),
            },
        ),
    }
    return obj(
        "The remote server and the gateway in front of it.",
        fields,
        rules=[
            _ONE_OIDC,
            _ONE_AUTHZ,
            rule(
                "has(self.remoteUrl) != has(self.remoteURL)",
                "remoteUrl is required (remoteURL, its older spelling, not both)",
            ),
        ],
    )


def _workload_status() -> Node:
    hashes = {
        "oidcConfigHash": string("The configHash of the MCPOIDCConfig in use."),
        "externalAuthConfigHash": string("The configHash of the MCPExternalAuthConfig in use."),
    }
    return status(_WORKLOAD_PHASES, hashes, workload=True)


MCP_SERVER = Kind(
    kind="MCPServer",
    plural="mcpservers",
    short_names=("mcpserver", "mcpservers"),
    description="An MCP server and the hivegate gateway in front of it.",
    spec=_server_spec(),
    status=_workload_status(),
    columns=(
        Column("Status", ".status.phase"),
        READY,
        Column("Replicas", ".status.readyReplicas", "integer"),
        Column("URL", ".status.url"),
    ),
)

MCP_REMOTE_PROXY = Kind(
    kind="MCPRemoteProxy",
    plural="mcpremoteproxies",
    short_names=("rp", "mcprp"),
    description="A hivegate gateway in front of an MCP server that runs elsewhere.",
    spec=_remote_spec(),
    status=_workload_status(),
    columns=(
        Column("Phase", ".status.phase"),
        Column("Remote URL", ".spec.remoteUrl"),
        Column("URL", ".status.url"),
        READY,
    ),
)
