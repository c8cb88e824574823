"""The authentication sections of a vMCP config: `incomingAuth` and `outgoingAuth` with its strategies.

`parse_incoming_auth` reads how clients authenticate (anonymous, local or OIDC, with `parse_oidc`) and the Cedar
policies they are held to (`parse_authz`); `parse_outgoing_auth` reads the credential each backend gets, one
strategy per backend (`parse_strategy`: unauthenticated, header injection, RFC 8693 token exchange or an upstream
provider's token), resolving the secrets they name now. The manifests reader reuses `parse_strategy` and
`checked_oidc`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hivegate.authn.oidc_config import OIDCConfig
from hivegate.authserver.secrets import SecretRef, SecretResolver, parse_secret_ref
from hivegate.authz.policy_config import AuthzConfig, parse_authz_config
from hivegate.config.reader import Reader
from hivegate.errors import ConfigError
from hivegate.vmcp.spec.model import (
    ACCESS_TOKEN_TYPE,
    BackendAuthStrategy,
    HeaderInjection,
    IncomingAuth,
    OutgoingAuth,
    TokenExchange,
    Unauthenticated,
    UpstreamInject,
)
from hivegate.vmcp.spec.values import secure_url

__all__ = [
    "TOKEN_TYPES",
    "checked_oidc",
    "parse_authz",
    "parse_incoming_auth",
    "parse_oidc",
    "parse_outgoing_auth",
    "parse_strategy",
    "private_and_http",
]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 section 5.6.2 token
TOKEN_TYPES = {
    "access_token": ACCESS_TOKEN_TYPE,
    "id_token": "urn:ietf:params:oauth:token-type:id_token",
    "jwt": "urn:ietf:params:oauth:token-type:jwt",
}
_STRATEGY_TYPES = {
    "unauthenticated": "unauthenticated",
    "headerInjection": "headerInjection",
    "header_injection": "headerInjection",
    "tokenExchange": "tokenExchange",
    "token_exchange": "tokenExchange",
    "upstreamInject": "upstreamInject",
    "upstream_inject": "upstreamInject",
}
_UNSUPPORTED_STRATEGIES = frozenset({"awsSts", "aws_sts", "obo", "xaa"})
_EXCHANGE_KEYS = ("tokenUrl", "clientId", "clientSecret", "clientSecretEnv", "clientSecretRef", "audience", "scopes",
                  "subjectTokenType", "subjectProviderName", "externalTokenHeaderName")  # fmt: skip
_OIDC_FLAGS = {
    "--oidc-issuer": "issuer",
    "--oidc-jwks-url": "jwksUrl",
    "--oidc-introspection-url": "introspectionUrl",
    "--oidc-audience": "audience",
    "--oidc-client-id": "clientId",
    "--oidc-client-secret": "clientSecret",
    "--oidc-scopes": "scopes",
    "--resource-url": "resource",
    "--oidc-insecure-allow-http": "insecureAllowHTTP",
    "--jwks-auth-token-file": "jwksAuthTokenPath",
}


def parse_incoming_auth(data: Mapping[str, Any], where: str, resolver: SecretResolver) -> IncomingAuth:
    r = Reader(data, where)
    kind = r.choice("type", ("anonymous", "local", "oidc"), required=True)
    if kind == "oidc":
        oidc = parse_oidc(r.section("oidc", required=True), r.at("oidc"), resolver)
    else:
        if r.has("oidc"):
            raise ConfigError(f"{r.at('oidc')}: only used when type is oidc")
        oidc = OIDCConfig(mode=kind)  # type: ignore[arg-type]
    authz, primary = parse_authz(r.get("authz"), r.at("authz"))
    r.done()
    return IncomingAuth(kind, oidc, authz, primary)  # type: ignore[arg-type]


def parse_oidc(data: Mapping[str, Any], where: str, resolver: SecretResolver) -> OIDCConfig:
    r = Reader(data, where)
    env = r.text("clientSecretEnv")
    private, http = private_and_http(r)
    cfg = OIDCConfig(
        issuer=r.text("issuer", required=True),
        audience=r.text("audience", required=True),
        client_id=r.text("clientId") or None,
        client_secret=resolver.resolve_text(SecretRef(env=env), r.at("clientSecretEnv")) if env else None,
        resource_url=r.text("resource") or None,
        jwks_url=r.text("jwksUrl") or None,
        introspection_url=r.text("introspectionUrl") or None,
        scopes=tuple(r.strings("scopes")) or ("openid",),
        jwks_auth_token_file=r.text("jwksAuthTokenPath") or None,
        jwks_allow_private_ip=private,
        insecure_allow_http=http,
    )
    r.done()
    return checked_oidc(cfg, where, keys={"--oidc-client-secret": "clientSecretEnv"})


def private_and_http(r: Reader) -> tuple[bool, bool]:
    """Whether to allow private addresses and http, from an OIDC mapping, under any of ToolHive's spellings:
    its vMCP config says `protectedResourceAllowPrivateIp`, `jwksAllowPrivateIp` and `insecureAllowHttp`; its CRDs
    end in `IP` and `HTTP`. Either private-address key allows private addresses for every OIDC fetch, as in ToolHive.
    """
    jwks = r.flag(r.spelling("jwksAllowPrivateIP", "jwksAllowPrivateIp"), default=False)
    resource = r.flag(r.spelling("protectedResourceAllowPrivateIP", "protectedResourceAllowPrivateIp"), default=False)
    http = r.flag(r.spelling("insecureAllowHTTP", "insecureAllowHttp"), default=False)
    return jwks or resource, http


def checked_oidc(cfg: OIDCConfig, where: str, *, keys: Mapping[str, str] | None = None) -> OIDCConfig:
    """`cfg.validate()`, with its messages' flag names turned into this config's keys (`keys` overrides some)."""
    try:
        cfg.validate()
    except ConfigError as exc:
        message = str(exc)
        for flag, key in {**_OIDC_FLAGS, **(keys or {})}.items():
            message = message.replace(flag, key)
        raise ConfigError(f"{where}: {message}") from None
    return cfg


def parse_authz(data: Any, where: str) -> tuple[AuthzConfig | None, str | None]:
    """`incomingAuth.authz` (ToolHive vMCP's shape) → our `AuthzConfig` and the primary upstream provider."""
    if data is None:
        return None, None
    r = Reader(data, where)
    kind = r.choice("type", ("cedar", "none"), required=True)
    policies = r.strings("policies")
    cedar = {
        "policies": policies,
        "entities_json": r.text("entitiesJson") or "[]",
        "group_claim_name": r.text("groupClaimName"),
        "role_claim_name": r.text("roleClaimName"),
    }
    primary = r.text("primaryUpstreamProvider") or None
    required = r.get("requiredScopes")  # hivegate's: scopes a token needs per tool, prompt or resource
    r.done()
    if kind == "none":
        if policies:
            raise ConfigError(f"{r.at('policies')}: only used when type is cedar")
        return None, primary
    if not policies:
        raise ConfigError(f"{r.at('policies')}: at least one policy is required when type is cedar")
    doc = {"version": "1.0", "type": "cedarv1", "cedar": cedar, "requiredScopes": required}
    return parse_authz_config(doc, source=where), primary


def parse_outgoing_auth(
    data: Mapping[str, Any], where: str, resolver: SecretResolver, *, allow_discovered: bool = False
) -> OutgoingAuth:
    r = Reader(data, where)
    source = r.choice("source", ("inline", "discovered")) or "inline"
    if source == "discovered" and not allow_discovered:
        raise ConfigError(
            f"{r.at('source')}: discovered reads each MCPServer's externalAuthConfigRef, which only Kubernetes "
            "manifests have (load them with -f); use inline here"
        )
    default = parse_strategy(r.get("default"), r.at("default"), resolver) if r.get("default") is not None else None
    backends = {
        str(name): parse_strategy(value, f"{r.at('backends')}.{name}", resolver)
        for name, value in r.section("backends").items()
    }
    r.done()
    return OutgoingAuth(source, default, backends)  # type: ignore[arg-type]


def parse_strategy(data: Any, where: str, resolver: SecretResolver) -> BackendAuthStrategy:
    """One outgoing strategy `{type, headerInjection | tokenExchange | upstreamInject}`; secrets resolved now."""
    r = Reader(data, where)
    given = r.text("type", required=True)
    kind = _STRATEGY_TYPES.get(given)
    if kind is None:
        if given in _UNSUPPORTED_STRATEGIES:
            raise ConfigError(f"{r.at('type')}: strategy {given!r} is not supported yet")
        raise ConfigError(
            f"{r.at('type')}: unknown strategy type {given!r} "
            "(use unauthenticated, headerInjection, tokenExchange or upstreamInject)"
        )
    for other in ("headerInjection", "tokenExchange", "upstreamInject"):
        if other != kind and r.has(other):
            raise ConfigError(f"{r.at(other)}: not used with type {given}")
    strategy: BackendAuthStrategy
    if kind == "unauthenticated":
        strategy = Unauthenticated()
    elif kind == "headerInjection":
        strategy = _header_injection(r.section(kind, required=True), r.at(kind), resolver)
    elif kind == "tokenExchange":
        strategy = _token_exchange(r.section(kind, required=True), r.at(kind), resolver)
    else:
        s = Reader(r.section(kind, required=True), r.at(kind))
        strategy = UpstreamInject(s.text("providerName", required=True))
        s.done()
    r.done()
    return strategy


def _header_injection(data: Mapping[str, Any], where: str, resolver: SecretResolver) -> HeaderInjection:
    r = Reader(data, where)
    name = r.text("headerName", required=True)
    if not _HEADER_NAME.fullmatch(name):
        raise ConfigError(f"{r.at('headerName')}: not a valid HTTP header name: {name!r}")
    value = _one_secret(r, "headerValue", "headerValueEnv", "valueSecretRef", resolver, required=True)
    if value is None or any(c in value for c in "\r\n\0"):
        raise ConfigError(f"{where}: the header value must be one line of text")
    r.done()
    return HeaderInjection(name, value)


def _token_exchange(data: Mapping[str, Any], where: str, resolver: SecretResolver) -> TokenExchange:
    r = Reader(data, where, known=_EXCHANGE_KEYS)
    url = secure_url(r.text("tokenUrl", required=True), r.at("tokenUrl"))
    token_type = r.text("subjectTokenType") or "access_token"
    if token_type not in TOKEN_TYPES and token_type not in TOKEN_TYPES.values():
        raise ConfigError(f"{r.at('subjectTokenType')}: must be access_token, id_token or jwt (or its URN)")
    header = r.text("externalTokenHeaderName") or None
    if header is not None and not _HEADER_NAME.fullmatch(header):
        raise ConfigError(f"{r.at('externalTokenHeaderName')}: not a valid HTTP header name: {header!r}")
    exchange = TokenExchange(
        token_url=url,
        client_id=r.text("clientId") or None,
        client_secret=_one_secret(r, "clientSecret", "clientSecretEnv", "clientSecretRef", resolver, required=False),
        audience=r.text("audience") or None,
        scopes=tuple(r.strings("scopes")),
        subject_token_type=TOKEN_TYPES.get(token_type, token_type),
        subject_provider_name=r.text("subjectProviderName") or None,
        external_token_header_name=header,
    )
    r.done()
    return exchange


def _one_secret(
    r: Reader, value_key: str, env_key: str, ref_key: str, resolver: SecretResolver, *, required: bool
) -> str | None:
    given = [k for k in (value_key, env_key, ref_key) if r.get(k) not in (None, "")]
    if len(given) > 1:
        raise ConfigError(f"{r.at(given[1])}: give one of {value_key}, {env_key} or {ref_key}")
    if not given:
        if required:
            raise ConfigError(f"{r.where}: needs {value_key}, {env_key} or {ref_key}")
        return None
    key = given[0]
    if key == value_key:
        return r.text(key)
    if key == env_key:
        return resolver.resolve_text(SecretRef(env=r.text(key)), r.at(key))
    return resolver.resolve_text(parse_secret_ref(r.get(key), r.at(key)), r.at(key))
