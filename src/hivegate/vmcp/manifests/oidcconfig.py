"""The incoming auth of a `VirtualMCPServer`: `spec.incomingAuth`, the `MCPOIDCConfig` it names, its Cedar policies.

`OIDCConfigMixin._incoming` reads how clients authenticate: anonymous, local, or OIDC with the settings of an
`oidcConfigRef` (an `MCPOIDCConfig`) or of the older inline `oidcConfig` (inline, kubernetes, or JSON in a
`ConfigMap`); and `authzConfig`, the Cedar policies (a ToolHive `cedarv1` config in a `ConfigMap`, or inline).
The keys are listed in `virtualmcpserver`'s docstring. `_server_auth` reads the same keys (`oidcConfig`,
`oidcConfigRef`, `authzConfig`) on an `MCPServer`: what its own proxy enforces (`ServerAuth`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import yaml

from hivegate.authn.oidc_config import OIDCConfig, parse_service_account
from hivegate.authserver.secrets import parse_secret_ref
from hivegate.authz.policy_config import AuthzConfig, parse_authz_config
from hivegate.config.reader import Reader
from hivegate.config.syntax import syntax_error
from hivegate.errors import ConfigError
from hivegate.vmcp.manifests.documents import BuilderBase
from hivegate.vmcp.spec import IncomingAuth, ServerAuth, checked_oidc
from hivegate.vmcp.spec.auth import private_and_http

__all__ = ["KUBERNETES_ISSUER", "OIDCConfigMixin"]

KUBERNETES_ISSUER = "https://kubernetes.default.svc"
KUBERNETES_AUDIENCE = "toolhive"  # ToolHive's default audience for service-account tokens


class OIDCConfigMixin(BuilderBase):
    """Reads `spec.incomingAuth`: the OIDC settings (`MCPOIDCConfig` or inline) and the authorization config."""

    def _incoming(self, data: Mapping[str, Any], where: str) -> IncomingAuth:
        r = Reader(data, where)
        ref, inline = r.get("oidcConfigRef"), r.get("oidcConfig")
        if ref is not None and inline is not None:
            raise ConfigError(f"{r.at('oidcConfig')}: give oidcConfigRef or oidcConfig, not both")
        kind = r.choice("type", ("anonymous", "oidc", "local")) or ("oidc" if ref or inline else "")
        if not kind:
            raise ConfigError(f"{r.at('type')}: required (anonymous when clients need no authentication)")
        if kind != "oidc":
            if ref is not None or inline is not None:
                raise ConfigError(f"{r.at('oidcConfigRef' if ref else 'oidcConfig')}: only used when type is oidc")
            oidc = OIDCConfig(mode=kind)  # type: ignore[arg-type]
        elif ref is not None:
            oidc = self._oidc_ref(ref, r.at("oidcConfigRef"))
        elif inline is not None:
            oidc = self._oidc_inline(inline, r.at("oidcConfig"))
        else:
            raise ConfigError(f"{r.at('oidcConfigRef')}: required when type is oidc")
        authz, primary = self._authz(r.get("authzConfig"), r.at("authzConfig"))
        r.done()
        return IncomingAuth(kind, oidc, authz, primary)  # type: ignore[arg-type]

    def _server_auth(self, spec: Reader) -> ServerAuth | None:
        """An `MCPServer`'s `oidcConfigRef` or `oidcConfig`, and `authzConfig`: what its own proxy enforces."""
        ref, inline = spec.get("oidcConfigRef"), spec.get("oidcConfig")
        if ref is not None and inline is not None:
            raise ConfigError(f"{spec.at('oidcConfig')}: give oidcConfigRef or oidcConfig, not both")
        oidc = None
        if ref is not None:
            oidc = self._oidc_ref(ref, spec.at("oidcConfigRef"))
        elif inline is not None:
            oidc = self._oidc_inline(inline, spec.at("oidcConfig"), own=True)  # its audience: `check_own_auth`
        authz, primary = self._authz(spec.get("authzConfig"), spec.at("authzConfig"))
        if primary is not None:
            raise ConfigError(f"{spec.at('authzConfig')}.inline.primaryUpstreamProvider: only used on a vMCP")
        if oidc is None and authz is None:
            return None
        return ServerAuth(oidc, authz, spec.where)

    def _oidc_ref(self, data: Any, where: str) -> OIDCConfig:
        r = Reader(data, where)
        doc = self._lookup("MCPOIDCConfig", r.text("name", required=True), r.at("name"))
        audience = r.text("audience", required=True)
        scopes = tuple(r.strings("scopes")) or ("openid",)
        resource = r.text("resourceUrl") or None
        r.done()
        spec = Reader(doc.spec, f"{doc.origin}: spec")
        kind = spec.choice("type", ("inline", "kubernetesServiceAccount"), required=True)
        other = "kubernetesServiceAccount" if kind == "inline" else "inline"
        if spec.get(other) is not None:
            raise ConfigError(f"{spec.at(other)}: only used when type is {other}")
        section = spec.section(kind, required=True)
        fields = self._oidc_fields(section, spec.at(kind), kubernetes=kind != "inline")
        spec.done()
        cfg = OIDCConfig(audience=audience, scopes=scopes, resource_url=resource, **fields)
        return checked_oidc(cfg, f"{where} ({doc.origin})")

    def _oidc_inline(self, data: Any, where: str, *, own: bool = False) -> OIDCConfig:
        r = Reader(data, where)
        kind = r.choice("type", ("inline", "kubernetes", "configMap"), required=True)
        for other in {"inline", "kubernetes", "configMap"} - {kind}:
            if r.get(other) is not None:
                raise ConfigError(f"{r.at(other)}: only used when type is {other}")
        resource = r.text("resourceUrl") or None
        if kind == "configMap":
            m = Reader(r.section("configMap", required=True), r.at("configMap"))
            text, origin = self._config_map_value(m.text("name", required=True), m.text("key") or "oidc.json", m.where)
            m.done()
            try:
                section = json.loads(text)
            except ValueError as exc:
                raise ConfigError(f"{origin}: not valid JSON: {exc}") from None
            at = origin
        else:
            section, at = r.section(kind, required=True), r.at(kind)
        s = Reader(section, at)
        audience = s.text("audience") or (KUBERNETES_AUDIENCE if kind == "kubernetes" else "")
        scopes = tuple(s.strings("scopes")) or ("openid",)
        fields = self._oidc_fields(s, at, kubernetes=kind == "kubernetes")
        r.done()
        cfg = OIDCConfig(audience=audience or None, scopes=scopes, resource_url=resource, **fields)
        if not cfg.audience:
            if not own:
                raise ConfigError(f"{at}.audience: required (tokens must be checked to be issued for this server)")
            checked_oidc(dataclasses.replace(cfg, audience="-"), where)  # every other check; the audience is later
            return cfg
        return checked_oidc(cfg, where)

    def _oidc_fields(self, data: Any, where: str, *, kubernetes: bool) -> dict[str, Any]:
        """The provider fields shared by MCPOIDCConfig and the inline/ConfigMap/kubernetes `oidcConfig` forms."""
        r = data if isinstance(data, Reader) else Reader(data, where)
        if kubernetes:
            account, namespace = r.text("serviceAccount"), r.text("namespace")
            r.get("useClusterAuth")  # the authenticator uses the pod's CA and token when it runs in a pod
            fields: dict[str, Any] = {"issuer": r.text("issuer") or KUBERNETES_ISSUER}
            if account or namespace:  # only that account (in any namespace), or any account of that namespace
                spec = f"{namespace or '*'}/{account or '*'}"
                parse_service_account(spec, r.at("serviceAccount" if account else "namespace"))
                fields["service_account"] = spec
        else:
            fields = {"issuer": r.text("issuer", required=True), "client_id": r.text("clientId") or None}
            ref = r.get("clientSecretRef")
            if ref is not None:
                at = r.at("clientSecretRef")
                fields["client_secret"] = self._resolver.resolve_text(parse_secret_ref(ref, at), at)
            elif r.text("clientSecret"):
                fields["client_secret"] = r.text("clientSecret")
            if r.get("caBundleRef") is not None or r.get("thvCABundlePath"):
                raise ConfigError(f"{r.where}: a CA bundle is not supported yet (the system CAs are used)")
            fields["jwks_auth_token_file"] = r.text("jwksAuthTokenPath") or None
            fields["jwks_allow_private_ip"], fields["insecure_allow_http"] = private_and_http(r)
        fields["jwks_url"] = r.text("jwksUrl") or None
        fields["introspection_url"] = r.text("introspectionUrl") or None
        r.done()
        return fields

    def _authz(self, data: Any, where: str) -> tuple[AuthzConfig | None, str | None]:
        if data is None:
            return None, None
        r = Reader(data, where)
        kind = r.choice("type", ("configMap", "inline")) or "configMap"
        other = "inline" if kind == "configMap" else "configMap"
        if r.get(other) is not None:
            raise ConfigError(f"{r.at(other)}: only used when type is {other}")
        primary = None
        if kind == "configMap":
            m = Reader(r.section("configMap", required=True), r.at("configMap"))
            key = m.text("key") or "authz.json"
            text, origin = self._config_map_value(m.text("name", required=True), key, m.where)
            m.done()
            try:
                data = json.loads(text) if key.endswith(".json") else yaml.safe_load(text)
            except (ValueError, yaml.YAMLError) as exc:
                raise syntax_error(origin, exc) from None
            authz = parse_authz_config(data, source=origin)
        else:
            i = Reader(r.section("inline", required=True), r.at("inline"))
            policies = i.strings("policies")
            if not policies:
                raise ConfigError(f"{i.at('policies')}: at least one policy is required")
            cedar = {"policies": policies, "entities_json": i.text("entitiesJson") or "[]"}
            primary = i.text("primaryUpstreamProvider") or None
            i.done()
            authz = parse_authz_config({"version": "1.0", "type": "cedarv1", "cedar": cedar}, source=i.where)
        group_claim, role_claim = r.text("groupClaimName"), r.text("roleClaimName")
        if group_claim or role_claim:
            cedar_cfg = dataclasses.replace(
                authz.cedar,
                group_claim_name=group_claim or authz.cedar.group_claim_name,
                role_claim_name=role_claim or authz.cedar.role_claim_name,
            )
            authz = dataclasses.replace(authz, cedar=cedar_cfg)
        r.done()
        return authz, primary
