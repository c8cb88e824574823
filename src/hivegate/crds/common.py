"""Schema pieces more than one kind uses: references, the OIDC and Cedar settings, the embedded authorization
server, the status every kind reports.

Field names follow ToolHive's operator (`toolhive.stacklok.dev`), including the older forms its manifests still
carry (`oidcConfig` inline on a server, `groupRef` as a plain string); what hivegate reads is in the readers of
`hivegate.vmcp.manifests` and `hivegate.authserver.settings`, which the drift test holds this schema to.
"""

from __future__ import annotations

from hivegate.authserver.settings import TOKEN_EXCHANGE_GRANT
from hivegate.crds.schema import (
    Node,
    anything,
    array,
    boolean,
    integer,
    map_of,
    obj,
    one_block_per_type,
    opaque,
    rule,
    string,
)

__all__ = [
    "DURATION",
    "HTTP_URL",
    "auth_server",
    "authz_config",
    "conditions",
    "group_ref",
    "legacy_oidc_config",
    "name_ref",
    "oidc_config_ref",
    "oidc_kubernetes_fields",
    "oidc_provider_fields",
    "secret_ref",
    "status",
]

DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
HTTP_URL = r"^https?://"
_CONDITION_TYPE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
_NAME_MAX = 253  # a Kubernetes object name (DNS subdomain); bounds the cost of CEL rules comparing names
_DNS_LABEL = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"


def secret_ref(description: str) -> Node:
    """A key of a Secret in the resource's namespace; the pod reads it, it is never copied."""
    return obj(
        description,
        {
            "name": string("The Secret's name.", min_length=1, max_length=_NAME_MAX),
            "key": string("The key within the Secret.", min_length=1, max_length=_NAME_MAX),
        },
        required=("name", "key"),
    )


def name_ref(description: str, kind: str) -> Node:
    return obj(
        description,
        {"name": string(f"The {kind}'s name, in the same namespace.", min_length=1, max_length=_NAME_MAX)},
        required=("name",),
    )


def group_ref() -> Node:
    return anything(
        "The MCPGroup this server belongs to: {name: <group>}, or the group's name (ToolHive's older form)."
    )


def conditions() -> Node:
    condition = obj(
        "One aspect of the resource's state (Kubernetes' metav1.Condition).",
        {
            "type": string("Ready, Valid, GroupRefValidated, …", pattern=_CONDITION_TYPE, max_length=316),
            "status": string("", enum=("True", "False", "Unknown")),
            "reason": string("A CamelCase word for why.", pattern=_REASON, min_length=1, max_length=1024),
            "message": string("What happened, naming the field when a spec is wrong.", max_length=32768),
            "lastTransitionTime": string("", fmt="date-time"),
            "observedGeneration": integer("", minimum=0, fmt="int64"),
        },
        required=("type", "status", "reason", "message", "lastTransitionTime"),
    )
    node = array(condition, "The resource's conditions, one per type.")
    node["x-kubernetes-list-type"] = "map"
    node["x-kubernetes-list-map-keys"] = ["type"]
    return node


def status(phases: tuple[str, ...], extra: dict[str, Node], *, workload: bool = False) -> Node:
    """The observed state the operator writes (the `status` subresource): phase, message, conditions, `extra`, and
    for a `workload` where it is served and how many replicas are ready.

    Keys not listed are kept (`x-kubernetes-preserve-unknown-fields`), unlike in `spec`: the operator may report more
    than this schema names, and a status is never read as configuration."""
    fields: dict[str, Node] = {
        "phase": string("Where the resource stands.", enum=phases),
        "message": string("A sentence about the phase."),
        "observedGeneration": integer("The metadata.generation this status describes.", fmt="int64"),
        "conditions": conditions(),
    }
    if workload:
        fields["url"] = string("http://<service>.<namespace>.svc.cluster.local:<port>/mcp")
        fields["readyReplicas"] = integer("Replicas ready.")
    node = obj("Written by the operator.", {**fields, **extra})
    node["x-kubernetes-preserve-unknown-fields"] = True
    return node


# -- incoming authentication ------------------------------------------------------------------------------------------


def oidc_provider_fields(*, legacy_secret: bool) -> dict[str, Node]:
    """The provider settings of an OIDC issuer (MCPOIDCConfig `inline`, and a server's older inline `oidcConfig`)."""
    fields: dict[str, Node] = {
        "issuer": string("The issuer URL; tokens' `iss` must equal it.", min_length=1),
        "jwksUrl": string("Where the signing keys are (default: from the issuer's discovery document)."),
        "introspectionUrl": string("An RFC 7662 endpoint for opaque tokens."),
        "clientId": string("The client for introspection."),
        "clientSecretRef": secret_ref("The client secret for introspection."),
        "jwksAuthTokenPath": string("A file whose content is sent as a bearer token to the JWKS endpoint."),
        "jwksAllowPrivateIP": boolean("Allow a JWKS endpoint on a private address.", default=False),
        "protectedResourceAllowPrivateIP": boolean("Allow private addresses (as jwksAllowPrivateIP).", default=False),
        "insecureAllowHTTP": boolean("Allow an http:// issuer (development only).", default=False),
        "caBundleRef": opaque("A CA bundle in a ConfigMap: not supported yet (the system CAs are used)."),
        "thvCABundlePath": string("A CA bundle file: not supported yet (the system CAs are used)."),
    }
    if legacy_secret:
        fields["clientSecret"] = string("The client secret as text (ToolHive's older field; prefer clientSecretRef).")
    return fields


def oidc_kubernetes_fields() -> dict[str, Node]:
    """Kubernetes service-account tokens as the credential (MCPOIDCConfig `kubernetesServiceAccount`)."""
    return {
        "issuer": string("The cluster's issuer.", default="https://kubernetes.default.svc"),
        "jwksUrl": string("Where the cluster's signing keys are."),
        "introspectionUrl": string("The token review endpoint, if not by signature."),
        "serviceAccount": string("Only this service account may call (in any namespace, or in `namespace`)."),
        "namespace": string("Only service accounts of this namespace may call."),
        "useClusterAuth": boolean("Reach the issuer with the pod's own service-account token and CA."),
    }


def _audience_and_scopes(fields: dict[str, Node], audience_default: str | None = None) -> dict[str, Node]:
    return {
        **fields,
        "audience": string("The audience tokens must carry.", default=audience_default),
        "scopes": array(string(), "The scopes advertised in the protected-resource metadata."),
    }


def legacy_oidc_config() -> Node:
    """A server's inline `oidcConfig` (ToolHive's older form, before MCPOIDCConfig)."""
    blocks = ("inline", "kubernetes", "configMap")
    return obj(
        "Incoming OIDC authentication, inline (ToolHive's older form; prefer oidcConfigRef).",
        {
            "type": string("Which block holds the settings.", enum=blocks),
            "resourceUrl": string("This server's URL as an OAuth protected resource (RFC 9728)."),
            "inline": obj(
                "The provider's settings.",
                _audience_and_scopes(oidc_provider_fields(legacy_secret=True)),
                required=("issuer",),
            ),
            "kubernetes": obj(
                "Kubernetes service-account tokens.",
                _audience_and_scopes(oidc_kubernetes_fields(), audience_default="toolhive"),
            ),
            "configMap": obj(
                "The inline settings as JSON in a ConfigMap.",
                {"name": string("The ConfigMap's name.", min_length=1), "key": string("", default="oidc.json")},
                required=("name",),
            ),
        },
        required=("type",),
        rules=one_block_per_type(blocks),
    )


def oidc_config_ref() -> Node:
    return obj(
        "Incoming OIDC authentication with the settings of an MCPOIDCConfig.",
        {
            "name": string("The MCPOIDCConfig's name, in the same namespace.", min_length=1),
            "audience": string("The audience tokens must carry (this server's).", min_length=1),
            "scopes": array(string(), "The scopes advertised in the protected-resource metadata (default openid)."),
            "resourceUrl": string("This server's URL as an OAuth protected resource (RFC 9728)."),
        },
        required=("name", "audience"),
    )


def authz_config() -> Node:
    """Cedar policies: a ToolHive `cedarv1` config in a ConfigMap, or inline."""
    blocks = ("configMap", "inline")
    return obj(
        "Cedar authorization policies.",
        {
            "type": string("Which block holds the policies.", enum=blocks, default="configMap"),
            "configMap": obj(
                "A ToolHive cedarv1 authorization config (JSON, or YAML under a key not ending in .json).",
                {"name": string("The ConfigMap's name.", min_length=1), "key": string("", default="authz.json")},
                required=("name",),
            ),
            "inline": obj(
                "The policies themselves.",
                {
                    "policies": array(string(min_length=1), "Cedar policies.", min_items=1),
                    "entitiesJson": string("Cedar entities, as JSON.", default="[]"),
                    "primaryUpstreamProvider": string(
                        "The upstream whose token's claims the policies see (vMCP with an authorization server).",
                        pattern=_DNS_LABEL,
                        max_length=63,
                    ),
                },
                required=("policies",),
            ),
            "groupClaimName": string("The token claim holding the caller's groups.", max_length=253),
            "roleClaimName": string("The token claim holding the caller's roles.", max_length=253),
        },
        rules=one_block_per_type(blocks),
    )


# -- the embedded authorization server -------------------------------------------------------------------------------


def _upstream() -> Node:
    user_info = obj(
        "The userinfo endpoint and how its answer maps to an identity.",
        {
            "endpointUrl": string("", min_length=1),
            "httpMethod": string("", enum=("GET", "POST"), default="GET"),
            "additionalHeaders": map_of(string(), "Headers sent with the request."),
            "fieldMapping": obj(
                "Which fields of the answer hold the subject, name and email (first present wins).",
                {
                    "subjectFields": array(string()),
                    "nameFields": array(string()),
                    "emailFields": array(string()),
                },
            ),
        },
        required=("endpointUrl",),
    )
    common: dict[str, Node] = {
        "clientId": string("hivegate's client at the provider.", min_length=1),
        "clientSecretRef": secret_ref("Its client secret."),
        "redirectUri": string("The callback URL registered at the provider (default: <issuer>/oauth/callback)."),
        "additionalAuthorizationParams": map_of(string(), "Extra query parameters for the authorization request."),
        "scopes": array(string(), "The scopes requested."),
    }
    oidc = obj(
        "An OpenID Connect provider, found by discovery.",
        {
            **common,
            "issuerUrl": string("", min_length=1),
            "userInfoOverride": user_info,
            "tokenExchange": obj(
                "Tokens of this provider accepted for RFC 8693 token exchange.",
                {"acceptedAudiences": array(string(), "The audiences accepted.")},
            ),
        },
        required=("issuerUrl", "clientId"),
    )
    oauth2 = obj(
        "A plain OAuth 2.0 provider.",
        {
            **common,
            "authorizationEndpoint": string("", min_length=1),
            "tokenEndpoint": string("", min_length=1),
            "userInfo": user_info,
        },
        required=("authorizationEndpoint", "tokenEndpoint", "clientId", "userInfo"),
    )
    return obj(
        "An identity provider users sign in with.",
        {
            "name": string("Names the provider in tokens and policies.", pattern=_DNS_LABEL, max_length=63),
            "type": string("", enum=("oidc", "oauth2")),
            "identityCheck": string(
                "email: this provider's email must match the first provider's (the default); none: no check.",
                enum=("email", "none"),
            ),
            "oidcConfig": oidc,
            "oauth2Config": oauth2,
        },
        required=("name", "type"),
        rules=[
            rule(
                "self.type == 'oidc' ? (has(self.oidcConfig) && !has(self.oauth2Config)) : "
                "(has(self.oauth2Config) && !has(self.oidcConfig))",
                "oidcConfig must be set when type is 'oidc', oauth2Config when type is 'oauth2', and not the other",
            )
        ],
    )


def auth_server(description: str) -> Node:
    """The embedded OAuth 2.1 authorization server (ToolHive's `embeddedAuthServer`, plus hivegate's settings)."""
    lifespan = string("", pattern=DURATION)
    storage = obj(
        "Where grants, codes and tokens are kept.",
        {
            "type": string("", enum=("sqlite", "memory", "redis"), default="sqlite"),
            "sqlite": obj("", {"path": string("The database file.")}),
            "redis": obj(
                "Redis, shared by every replica.",
                {
                    "url": string("redis:// or rediss:// URL."),
                    "urlSecretRef": secret_ref("The URL, from a Secret (it may hold a password)."),
                    "keyPrefix": string("", default="hivegate:authserver:"),
                    "dialTimeout": string("Accepted for ToolHive's manifests; not used.", pattern=DURATION),
                    "readTimeout": string("Accepted for ToolHive's manifests; not used.", pattern=DURATION),
                    "writeTimeout": string("Accepted for ToolHive's manifests; not used.", pattern=DURATION),
                },
            ),
        },
        rules=[rule("self.type != 'redis' || has(self.redis)", "redis must be set when type is 'redis'")],
    )
    client = obj(
        "A client registered ahead of time.",
        {
            "clientId": string("", min_length=1),
            "clientSecretRef": secret_ref("Makes it a confidential client."),
            "redirectUris": array(string()),
            "grantTypes": array(
                string(enum=("authorization_code", "refresh_token", "token_exchange", TOKEN_EXCHANGE_GRANT))
            ),
            "clientName": string(),
        },
        required=("clientId",),
    )
    return obj(
        description,
        {
            "issuer": string("The issuer URL, no trailing slash.", pattern=r"^https?://[^\s?#]+[^/\s?#]$"),
            "authorizationEndpointBaseUrl": string("Where browsers reach it, if not the issuer.", pattern=HTTP_URL),
            "signingKeySecretRefs": array(
                secret_ref("A PEM private key."), "Signing keys; the first signs.", max_items=5
            ),
            "hmacSecretRefs": array(
                secret_ref("At least 32 bytes."), "HMAC keys for codes and tokens; the first signs."
            ),
            "upstreamProviders": array(_upstream(), "The identity providers, in order.", min_items=1),
            "tokenLifespans": obj(
                "How long tokens live.",
                {"accessTokenLifespan": lifespan, "refreshTokenLifespan": lifespan, "authCodeLifespan": lifespan},
            ),
            "allowedAudiences": array(string(), "Resources (RFC 8707) tokens may be issued for."),
            "scopesSupported": array(string(), "Scopes clients may ask for."),
            "clients": array(client, "Clients registered ahead of time."),
            "requireConsent": boolean("Ask the user before issuing a token to a client.", default=True),
            "storage": storage,
            "registration": obj(
                "Dynamic client registration (RFC 7591) limits.",
                {
                    "initialAccessTokenSecretRefs": array(
                        secret_ref("A token a client must present to register."), max_items=5
                    ),
                    "allowRegistrationScope": boolean("A token with the registration scope may register."),
                },
            ),
        },
        required=("issuer", "upstreamProviders"),
    )
