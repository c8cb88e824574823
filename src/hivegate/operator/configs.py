"""Validating an `MCPExternalAuthConfig` or `MCPOIDCConfig` with the readers `hivegate run -f` and `vmcp serve` use.

Secret values are stood in for (the operator checks that the Secret and key exist; it never reads a value), so
what is checked is the shape: the strategy of `type`, its fields, URLs, the embedded authorization server's
settings. A `ConfigError` names the field (`MCPExternalAuthConfig/x: spec.tokenExchange.tokenUrl: …`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hivegate.authserver.secrets import SecretResolver
from hivegate.errors import ConfigError
from hivegate.operator.refs import SecretUse, secret_refs
from hivegate.vmcp.manifests.documents import Doc
from hivegate.vmcp.manifests.externalauth import ExternalAuthMixin
from hivegate.vmcp.manifests.oidcconfig import OIDCConfigMixin

__all__ = ["CONFIG_KINDS", "check_config", "config_secrets"]

CONFIG_KINDS = ("MCPExternalAuthConfig", "MCPOIDCConfig")
_PLACEHOLDER = b"hivegate-operator-validation-placeholder-0123456789"


class _Checker(ExternalAuthMixin, OIDCConfigMixin):
    pass


def config_secrets(body: Mapping[str, Any]) -> list[SecretUse]:
    name = (body.get("metadata") or {}).get("name")
    return list(secret_refs(body.get("spec"), f"{body.get('kind')}/{name}: spec"))


def check_config(body: Mapping[str, Any]) -> None:
    """`ConfigError` when the config would be refused by the gateway that uses it."""
    kind = str(body.get("kind"))
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace") or "default")
    doc = Doc(kind, name, namespace, f"{kind}/{name}", dict(body))
    placeholders: dict[str, dict[str, bytes]] = {}
    for use in config_secrets(body):
        placeholders.setdefault(use.name, {})[use.key] = _PLACEHOLDER
    resolver = SecretResolver(manifests=placeholders, environ={})
    checker = _Checker({(kind, namespace, name): doc}, resolver)
    checker._ns = namespace
    if kind == "MCPExternalAuthConfig":
        checker._external_config(doc)
    elif kind == "MCPOIDCConfig":
        checker._oidc_ref({"name": name, "audience": "validation"}, f"spec.{(body.get('spec') or {}).get('type')}")
    else:
        raise ConfigError(f"{kind}: not a config kind")
