"""`VirtualMCPServer` (one endpoint aggregating the servers of an `MCPGroup`) and `MCPGroup`.

The readers are `hivegate.vmcp.manifests.virtualmcpserver` (with `group`, `oidcconfig`, `externalauth`). The
sections of `spec.config` that a vMCP config file also has (`aggregation`, `operational`, `telemetry`, `audit`) are
kept as given here and checked by the same parsers as that file (`hivegate.vmcp.spec`), which name the field.
"""

from __future__ import annotations

from dataclasses import replace

from hivegate.crds.common import (
    auth_server,
    authz_config,
    legacy_oidc_config,
    name_ref,
    oidc_config_ref,
    secret_ref,
    status,
)
from hivegate.crds.crd import AGE, CHECKED, READY, Column, Kind
from hivegate.crds.schema import Node, array, integer, map_of, obj, opaque, rule, string

__all__ = ["MCP_GROUP", "VIRTUAL_MCP_SERVER"]

_NOT_YET = "Not supported by hivegate yet: the operator reports it in a condition."
_CONFIG_SECTION = "Checked as the same section of a vMCP config file is."


def _backend_auth(description: str) -> Node:
    return obj(
        description,
        {
            "type": string(
                "discovered: the MCPServer's own externalAuthConfigRef; externalAuthConfigRef: the one named here.",
                enum=("discovered", "externalAuthConfigRef"),
            ),
            "externalAuthConfigRef": name_ref("", "MCPExternalAuthConfig"),
        },
        required=("type",),
        rules=[
            rule(
                "(self.type == 'externalAuthConfigRef') == has(self.externalAuthConfigRef)",
                "externalAuthConfigRef must be set when type is 'externalAuthConfigRef', and only then",
            )
        ],
    )


def _incoming() -> Node:
    return obj(
        "How clients authenticate to the vMCP, and the Cedar policies that authorize them.",
        {
            "type": string("anonymous, oidc, or hivegate's local.", enum=("anonymous", "oidc", "local")),
            "oidcConfigRef": oidc_config_ref(),
            "oidcConfig": legacy_oidc_config(),
            "authzConfig": authz_config(),
        },
        rules=[
            rule(
                "!(has(self.oidcConfig) && has(self.oidcConfigRef))",
                "oidcConfig and oidcConfigRef are mutually exclusive",
            ),
            rule(
                "!has(self.type) || self.type == 'oidc' || !(has(self.oidcConfig) || has(self.oidcConfigRef))",
                "oidcConfigRef and oidcConfig are only used when type is oidc",
            ),
            rule(
                "has(self.type) || has(self.oidcConfig) || has(self.oidcConfigRef)",
                "type is required (anonymous when clients need no authentication)",
            ),
        ],
    )


def _static_backend() -> Node:
    return obj(
        "A backend that is not an MCPServer of the group.",
        {
            "name": string("", min_length=1),
            "url": string(),
            "transport": string("", enum=("stdio", "streamable-http", "sse")),
            "command": string("A command the gateway starts (stdio)."),
            "args": array(string()),
            "env": map_of(string()),
            "metadata": map_of(string()),
            "stdioIdleTimeout": string("Stop a stdio backend's process idle this long (e.g. 5m; 0: never)."),
            "stdioSharing": string(
                "How client sessions share a stdio backend's processes: per-session, shared or pool=N.",
                pattern=r"^(per-session|shared|pool=[1-9][0-9]*)$",
            ),
        },
        required=("name",),
    )


def _spec() -> Node:
    config = obj(
        "The vMCP's settings, as in a vMCP config file.",
        {
            "name": string("The vMCP's name (default: metadata.name)."),
            "groupRef": string("The MCPGroup's name; must agree with spec.groupRef."),
            "backends": array(_static_backend(), "Backends besides the group's MCPServers."),
            "aggregation": opaque(f"How the backends' tools are combined and named. {_CONFIG_SECTION}"),
            "operational": opaque(f"Timeouts and failure handling. {_CONFIG_SECTION}"),
            "telemetry": opaque(f"OpenTelemetry export. {_CONFIG_SECTION}"),
            "audit": opaque(f"Audit events. {_CONFIG_SECTION}"),
            "metadata": map_of(string(), "Free-form labels."),
            "compositeTools": array(opaque("A composite tool."), _NOT_YET),
            "compositeToolRefs": array(name_ref("", "VirtualMCPCompositeToolDefinition"), _NOT_YET),
            "optimizer": opaque(_NOT_YET),
            "incomingAuth": opaque("Set spec.incomingAuth instead (it takes precedence in ToolHive)."),
            "outgoingAuth": opaque("Set spec.outgoingAuth instead (it takes precedence in ToolHive)."),
        },
    )
    return obj(
        "The group to aggregate and how clients and backends are authenticated.",
        {
            "groupRef": name_ref("The MCPGroup whose MCPServers are the backends.", "MCPGroup"),
            "config": config,
            "incomingAuth": _incoming(),
            "outgoingAuth": obj(
                "How the vMCP authenticates to each backend.",
                {
                    "source": string(
                        "discovered: each MCPServer's externalAuthConfigRef, then `backends`; inline: `backends` only.",
                        enum=("discovered", "inline"),
                        default="discovered",
                    ),
                    "default": _backend_auth("For backends that have no entry in `backends`."),
                    "backends": map_of(_backend_auth("The strategy of one backend."), "By backend (MCPServer) name."),
                },
            ),
            "authServerConfig": auth_server("The embedded authorization server the vMCP runs."),
            "sessionStorage": obj(
                "Where sessions are kept so that replicas share them.",
                {
                    "provider": string("", enum=("memory", "redis")),
                    "address": string("host:port of Redis.", min_length=1),
                    "url": string("hivegate's: a redis:// or rediss:// URL in place of address."),
                    "db": integer("", minimum=0, default=0),
                    "keyPrefix": string(),
                    "passwordRef": secret_ref("The Redis password."),
                    "ttl": string("How long an idle session is kept (default 30m)."),
                },
                required=("provider",),
                rules=[
                    rule(
                        "self.provider == 'redis' ? (has(self.address) || has(self.url)) : true",
                        "address is required when provider is redis",
                    ),
                    rule("!(has(self.address) && has(self.url))", "give address or url, not both"),
                ],
            ),
            "aggregation": opaque(f"The older place of config.aggregation. {_CONFIG_SECTION}"),
            "operational": opaque(f"The older place of config.operational. {_CONFIG_SECTION}"),
            "compositeTools": array(
                opaque("A composite tool."), f"The older place of config.compositeTools. {_NOT_YET}"
            ),
            "serviceType": string("", enum=("ClusterIP", "NodePort", "LoadBalancer"), default="ClusterIP"),
            "sessionAffinity": string("The Service's session affinity.", enum=("ClientIP", "None"), default="ClientIP"),
            "serviceAccount": string("An existing ServiceAccount the vMCP's pod runs as."),
            "podTemplateSpec": opaque(
                "Merged into the vMCP's pod template: pod settings, sidecars and volumes; its container (`vmcp` or "
                "`gateway`) takes resources, env and volumeMounts only."
            ),
            "replicas": integer(
                "vMCP replicas (not set: left to an autoscaler; several need sessionStorage with redis).", minimum=0
            ),
            "imagePullSecrets": array(obj("", {"name": string()}), "Secrets for pulling the image."),
            "telemetryConfigRef": opaque(f"An MCPTelemetryConfig. {_NOT_YET}"),
            "embeddingServerRef": opaque(f"An EmbeddingServer. {_NOT_YET}"),
            "rateLimiting": opaque(f"Rate limits. {_NOT_YET}"),
            "tokenCache": opaque(_NOT_YET),
        },
        required=("incomingAuth",),
        rules=[
            rule("has(self.groupRef) || (has(self.config) && has(self.config.groupRef))", "groupRef is required"),
            rule(
                "!(has(self.groupRef) && has(self.config) && has(self.config.groupRef)) "
                "|| self.groupRef.name == self.config.groupRef",
                "config.groupRef differs from groupRef",
            ),
            rule(
                "!(has(self.aggregation) && has(self.config) && has(self.config.aggregation))",
                "aggregation is also set as config.aggregation; keep one",
            ),
            rule(
                "!(has(self.operational) && has(self.config) && has(self.config.operational))",
                "operational is also set as config.operational; keep one",
            ),
        ],
    )


_VMCP_STATUS = status(
    ("Pending", "Ready", "Degraded", "Failed"),
    {
        "backendCount": integer("Backends discovered."),
        "discoveredBackends": array(opaque("A backend: name, URL, and whether it answers."), "The backends."),
        "oidcConfigHash": string("The configHash of the MCPOIDCConfig in use."),
    },
    workload=True,
)

VIRTUAL_MCP_SERVER = Kind(
    kind="VirtualMCPServer",
    plural="virtualmcpservers",
    short_names=("vmcp", "virtualmcp"),
    description="One MCP endpoint for the servers of an MCPGroup, run by hivegate's vMCP.",
    spec=_spec(),
    status=_VMCP_STATUS,
    columns=(
        Column("Phase", ".status.phase", description="The phase of the VirtualMCPServer"),
        Column("URL", ".status.url", description="Virtual MCP server URL"),
        Column("Backends", ".status.backendCount", "integer", "Discovered backends count"),
        replace(AGE, description="Age"),  # before Ready, as in ToolHive's CRD
        READY,
    ),
)

_GROUP_STATUS = status(
    ("Ready", "Pending", "Failed"),
    {
        "servers": array(string(), "The MCPServers whose groupRef names this group."),
        "serverCount": integer(),
        "remoteProxies": array(string(), "The MCPRemoteProxies whose groupRef names this group."),
        "remoteProxyCount": integer(),
    },
)

MCP_GROUP = Kind(
    kind="MCPGroup",
    plural="mcpgroups",
    short_names=("mcpg", "mcpgroup"),
    description="A set of MCP servers (those whose groupRef names it) that a VirtualMCPServer aggregates.",
    spec=obj("The group.", {"description": string("What the group is for.")}),
    status=_GROUP_STATUS,
    columns=(
        Column("Servers", ".status.serverCount", "integer"),
        Column("Proxies", ".status.remoteProxyCount", "integer"),
        Column("Phase", ".status.phase"),
        CHECKED,  # ToolHive's column: whether the members were looked up (MCPServersChecked)
    ),
)
