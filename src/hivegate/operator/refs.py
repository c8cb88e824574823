"""What a resource references by name: the configs it renders with and the Secrets its pod reads.

`config_refs(spec)` walks a `spec` for the references ToolHive's kinds make, wherever they sit (`spec.oidcConfigRef`,
`spec.incomingAuth.oidcConfigRef`, `spec.outgoingAuth.backends.<b>.externalAuthConfigRef`, a `configMap{name}`
under `oidcConfig` or `authzConfig`, `authServerRef`), each with the field path that names it, so an error can say
which field points at what is missing. `secret_refs(body)` finds every `{name, key}` under a key that names a Secret
(`clientSecretRef`, `signingKeySecretRefs`, `hmacSecretRefs`, `valueSecretRef`, `passwordRef`, …) and
`MCPServer.spec.secrets`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Ref", "SecretUse", "config_refs", "secret_refs"]

_CONFIG_KEYS = {
    "oidcConfigRef": "MCPOIDCConfig",
    "externalAuthConfigRef": "MCPExternalAuthConfig",
    "authServerRef": "MCPExternalAuthConfig",
    "configMap": "ConfigMap",
}
_SECRET_KEY = re.compile(r"(?i).*(secret|password|token)refs?$")


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to another resource of the same namespace, at `field` (e.g. `spec.oidcConfigRef.name`)."""

    kind: str
    name: str
    field: str


@dataclass(frozen=True, slots=True)
class SecretUse:
    """A Secret's key that a config reads, at `field`."""

    name: str
    key: str
    field: str


def config_refs(spec: Any, where: str = "spec") -> Iterator[Ref]:
    """The `MCPOIDCConfig`, `MCPExternalAuthConfig` and `ConfigMap` references in `spec`."""
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            at = f"{where}.{key}"
            kind = _CONFIG_KEYS.get(str(key))
            if kind is not None and isinstance(value, Mapping) and isinstance(value.get("name"), str):
                if value.get("kind") in (None, "MCPExternalAuthConfig") or kind != "MCPExternalAuthConfig":
                    yield Ref(kind, value["name"], f"{at}.name")
                continue
            yield from config_refs(value, at)
    elif isinstance(spec, list):
        for i, item in enumerate(spec):
            yield from config_refs(item, f"{where}[{i}]")


def secret_refs(spec: Any, where: str = "spec") -> Iterator[SecretUse]:
    """The Secret keys read by the configs in `spec` (and by an `MCPServer`'s `spec.secrets`)."""
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            at = f"{where}.{key}"
            if _SECRET_KEY.fullmatch(str(key)) or (key == "secrets" and where.endswith("spec")):
                items = value if isinstance(value, list) else [value]
                for i, item in enumerate(items):
                    spot = f"{at}[{i}]" if isinstance(value, list) else at
                    if (
                        isinstance(item, Mapping)
                        and isinstance(item.get("name"), str)
                        and isinstance(item.get("key"), str)
                    ):
                        yield SecretUse(item["name"], item["key"], spot)
                continue
            yield from secret_refs(value, at)
    elif isinstance(spec, list):
        for i, item in enumerate(spec):
            yield from secret_refs(item, f"{where}[{i}]")
