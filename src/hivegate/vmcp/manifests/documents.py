"""Reading manifests: the files, their YAML documents, and looking up the resources they hold by reference.

`find_files` lists the files given (every `*.yaml`, `*.yml`, `*.json` below a folder, in name order) and
`read_documents` yields the resources of one file as `Doc`s, each named `<file>:doc<N> <Kind>/<name>` for errors.
`BuilderBase` holds the state of resolving one `VirtualMCPServer` (the index of the resources, the secret resolver,
what the readers found so far) and the lookups by kind and name they share; the reader of each kind is a subclass
of it in that kind's module, and `virtualmcpserver` combines them.

Kinds read (any `toolhive.stacklok.dev/*` version): `VirtualMCPServer`, `MCPGroup`, `MCPServer`, `MCPRemoteProxy`,
`MCPExternalAuthConfig`, `MCPOIDCConfig`, plus `ConfigMap` and `Secret`. Other ToolHive kinds (`MCPToolConfig`, …)
are an error ("not supported yet"); other Kubernetes kinds (`ServiceAccount`, `Deployment`, `Pod`, …) are skipped.
References resolve within the referring resource's namespace (`default` when unset); only the resources a
`VirtualMCPServer` (or, for `hivegate run -f`, an `MCPServer`/`MCPRemoteProxy`) reaches are interpreted.

Below a folder, names starting with a dot are skipped: a ConfigMap mounted in a pod holds each file twice, as
`NAME` and under its `..<timestamp>/` (and `..data/`) folder.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hivegate.authserver.secrets import SecretResolver
from hivegate.authserver.settings import AuthServerConfig
from hivegate.config.syntax import syntax_error
from hivegate.errors import ConfigError
from hivegate.vmcp.spec import BackendAuthStrategy

__all__ = ["TOOLHIVE_API", "BuilderBase", "Doc", "find_files", "read_documents"]

TOOLHIVE_API = "toolhive.stacklok.dev/"
_KINDS = frozenset({"VirtualMCPServer", "MCPGroup", "MCPServer", "MCPRemoteProxy", "MCPExternalAuthConfig",
                    "MCPOIDCConfig", "ConfigMap", "Secret"})  # fmt: skip
_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Doc:
    kind: str
    name: str
    namespace: str
    origin: str  # "<file>:doc<N> <Kind>/<name>"
    body: Mapping[str, Any]

    @property
    def spec(self) -> Any:
        return self.body.get("spec")

    @property
    def annotations(self) -> Mapping[str, Any]:
        value = (self.body.get("metadata") or {}).get("annotations") or {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self.origin}: metadata.annotations: must be a mapping")
        return value


def find_files(paths: Sequence[str | Path]) -> Iterator[Path]:
    if not paths:
        raise ConfigError("no manifest files given")
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in _SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise ConfigError(f"{path}: no .yaml, .yml or .json files in this folder")
            yield from found
        elif path.is_file():
            yield path
        else:
            raise ConfigError(f"{path}: no such file or folder")


def read_documents(path: Path) -> Iterator[Doc]:
    try:
        loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise syntax_error(path, exc) from None
    for number, body in enumerate(loaded, start=1):
        where = f"{path.name}:doc{number}"
        if body is None:
            continue
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where}: must be a mapping (a Kubernetes resource)")
        kind, api = body.get("kind"), body.get("apiVersion")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"{where}: kind: required")
        if kind not in _KINDS:
            if isinstance(api, str) and api.startswith(TOOLHIVE_API):
                raise ConfigError(f"{where} {kind}: not supported yet")
            continue  # a Kubernetes resource that means nothing locally (ServiceAccount, Deployment, Pod, …)
        metadata = body.get("metadata")
        if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
            raise ConfigError(f"{where} {kind}: metadata.name: required")
        namespace = metadata.get("namespace") or "default"
        yield Doc(kind, metadata["name"], str(namespace), f"{where} {kind}/{metadata['name']}", body)


class BuilderBase:
    """The state of resolving one `VirtualMCPServer`, and the lookups the reader of every kind uses.

    The readers are subclasses (`GroupMixin`, `MCPServerMixin`, `ExternalAuthMixin`, `OIDCConfigMixin`) that
    `virtualmcpserver._Builder` combines.
    """

    def __init__(self, index: Mapping[tuple[str, str, str], Doc], resolver: SecretResolver) -> None:
        self._index = index
        self._resolver = resolver
        self._external: dict[str, tuple[BackendAuthStrategy, AuthServerConfig | None]] = {}
        self._auth_server: AuthServerConfig | None = None
        self._auth_server_origin = ""
        self._ns = "default"
        self._to_check: list[tuple[BackendAuthStrategy, str]] = []  # once the authorization server is known

    def _lookup(self, kind: str, name: str, where: str) -> Doc:
        doc = self._index.get((kind, self._ns, name))
        if doc is None:
            raise ConfigError(f"{where}: {kind} {name!r} not found in namespace {self._ns}")
        return doc

    def _config_map_value(self, name: str, key: str, where: str) -> tuple[str, str]:
        doc = self._lookup("ConfigMap", name, f"{where}.name")
        data = doc.body.get("data") or {}
        if not isinstance(data, Mapping) or key not in data:
            raise ConfigError(f"{where}.key: ConfigMap {name!r} ({doc.origin.split(' ')[0]}) has no key {key!r}")
        value = data[key]
        if not isinstance(value, str):
            raise ConfigError(f"{doc.origin}: data.{key}: must be a string")
        return value, f"{doc.origin}: data.{key}"
