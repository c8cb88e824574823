"""`MCPExternalAuthConfig` (how a gateway authenticates to its server) and `MCPOIDCConfig` (how it checks callers).

Both are configurations other resources reference by name; the operator validates them (condition `Valid`), hashes
their `spec` into `status.configHash` and keeps them while they are referenced. The readers are
`hivegate.vmcp.manifests.externalauth` (with `hivegate.vmcp.spec.auth.parse_strategy` and
`hivegate.authserver.settings`) and `oidcconfig`.
"""

from __future__ import annotations

from hivegate.crds.common import auth_server, oidc_kubernetes_fields, oidc_provider_fields, secret_ref, status
from hivegate.crds.crd import VALID, Column, Kind
from hivegate.crds.schema import Node, array, obj, one_block_per_type, string

__all__ = ["MCP_EXTERNAL_AUTH_CONFIG", "MCP_OIDC_CONFIG"]

_STRATEGIES = ("tokenExchange", "headerInjection", "bearerToken", "upstreamInject", "embeddedAuthServer")


def _external_spec() -> Node:
    header = obj(
        "A header with a value from a Secret on every request to the server.",
        {"headerName": string("", min_length=1), "valueSecretRef": secret_ref("The header's value.")},
        required=("headerName", "valueSecretRef"),
        local_only=("headerValue", "headerValueEnv"),
    )
    exchange = obj(
        "RFC 8693 token exchange: the caller's token is traded for one for the server.",
        {
            "tokenUrl": string("The token endpoint.", min_length=1),
            "clientId": string(),
            "clientSecretRef": secret_ref("The client secret."),
            "audience": string("The audience asked for."),
            "scopes": array(string(), "The scopes asked for."),
            "subjectTokenType": string(
                "The type of the caller's token.",
                pattern=r"^(access_token|id_token|jwt|urn:ietf:params:oauth:token-type:(access_token|id_token|jwt))?$",
            ),
            "subjectProviderName": string("Exchange the token of this upstream of the authorization server."),
            "externalTokenHeaderName": string("Send the new token in this header, not Authorization."),
        },
        required=("tokenUrl",),
        local_only=("clientSecret", "clientSecretEnv"),
    )
    return obj(
        "One strategy, named by type, with its block.",
        {
            "type": string("The strategy.", enum=(*_STRATEGIES, "unauthenticated")),
            "tokenExchange": exchange,
            "headerInjection": header,
            "bearerToken": obj(
                "An Authorization: Bearer header with a token from a Secret.",
                {"tokenSecretRef": secret_ref("The token.")},
                required=("tokenSecretRef",),
            ),
            "upstreamInject": obj(
                "The caller's token of an upstream provider of the embedded authorization server.",
                {"providerName": string("The upstream provider's name.", min_length=1)},
                required=("providerName",),
            ),
            "embeddedAuthServer": auth_server("An OAuth 2.1 authorization server run by the gateway."),
        },
        required=("type",),
        rules=one_block_per_type(_STRATEGIES),
    )


def _oidc_spec() -> Node:
    blocks = ("inline", "kubernetesServiceAccount")
    return obj(
        "An OIDC provider whose tokens a gateway accepts; the audience is set where it is referenced.",
        {
            "type": string("Which block holds the settings.", enum=blocks),
            "inline": obj(
                "The provider's settings.",
                oidc_provider_fields(legacy_secret=False),
                required=("issuer",),
                local_only=("clientSecret",),
            ),
            "kubernetesServiceAccount": obj("Kubernetes service-account tokens.", oidc_kubernetes_fields()),
        },
        required=("type",),
        rules=one_block_per_type(blocks),
    )


def _config_status() -> Node:
    fields = {
        "configHash": string("SHA-256 of the spec; workloads roll when it changes."),
        "referencedBy": array(string(), "<Kind>/<name> of the resources that use this one."),
    }
    return status(("Pending", "Ready", "Failed"), fields)


MCP_EXTERNAL_AUTH_CONFIG = Kind(
    kind="MCPExternalAuthConfig",
    plural="mcpexternalauthconfigs",
    short_names=("extauth", "mcpextauth"),
    description="How a gateway authenticates to the MCP server behind it.",
    spec=_external_spec(),
    status=_config_status(),
    columns=(Column("Type", ".spec.type"), VALID),
)

MCP_OIDC_CONFIG = Kind(
    kind="MCPOIDCConfig",
    plural="mcpoidcconfigs",
    short_names=("mcpoidc",),
    description="An OIDC provider whose tokens gateways accept, shared by reference.",
    spec=_oidc_spec(),
    status=_config_status(),
    columns=(Column("Source", ".spec.type"), VALID),
)
