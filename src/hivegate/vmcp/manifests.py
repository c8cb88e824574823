"""Kubernetes-shaped manifests, run locally: ToolHive's vMCP resources turned into a `VMCPConfig`.

`load_manifests(paths)` reads files and folders (every `*.yaml`, `*.yml`, `*.json` below a folder, in name order;
`---`-separated documents) holding the resources as the ToolHive operator takes them, resolves the references
between them as the operator would, and returns the same `VMCPConfig` a vMCP config file gives. With several
`VirtualMCPServer`s, `name=` picks one. Errors read `<file>:doc<N> <Kind>/<name>: <field path>: <problem>`
(documents numbered from 1).

Kinds read (any `toolhive.stacklok.dev/*` version): `VirtualMCPServer`, `MCPGroup`, `MCPServer`,
`MCPExternalAuthConfig`, `MCPOIDCConfig`, plus `ConfigMap` and `Secret`. Other ToolHive kinds (`MCPRemoteProxy`,
`MCPToolConfig`, …) are an error ("not supported yet"); other Kubernetes kinds (`ServiceAccount`, `Deployment`, `Pod`,
…) are skipped. References resolve within the referring resource's namespace (`default` when unset); only the
resources a `VirtualMCPServer` reaches are interpreted.

How the `VirtualMCPServer` maps:
- `metadata.name` → `name` (`spec.config.name` wins when set); `spec.groupRef.name` (or `spec.config.groupRef`) →
  `group_ref`; the `MCPGroup` must exist, and every `MCPServer` whose `spec.groupRef` names it becomes a backend
  named after the `MCPServer`, next to any static `spec.config.backends`.
- `spec.incomingAuth.type` anonymous | oidc (| local). OIDC settings come from `oidcConfigRef{name, audience,
  scopes, resourceUrl}` → an `MCPOIDCConfig` (`inline{issuer, jwksUrl, introspectionUrl, clientId, clientSecretRef,
  jwksAuthTokenPath, jwksAllowPrivateIP, protectedResourceAllowPrivateIP, insecureAllowHTTP}` or
  `kubernetesServiceAccount{issuer [https://kubernetes.default.svc], jwksUrl, introspectionUrl}`), or from the older
  inline `oidcConfig{type: inline | kubernetes | configMap, resourceUrl, …}` (`configMap{name, key [oidc.json]}`
  holds the inline fields as JSON). `authzConfig{type: configMap | inline, configMap{name, key [authz.json]},
  inline{policies, entitiesJson, primaryUpstreamProvider}, groupClaimName, roleClaimName}`: a ConfigMap holds a
  ToolHive `cedarv1` authorization config.
- `spec.authServerConfig` → the embedded authorization server (Secrets referenced by name and key).
- `spec.outgoingAuth{source [discovered] | inline, default, backends{<backend>: {type: discovered |
  externalAuthConfigRef, externalAuthConfigRef{name}}}}`. `discovered` takes each `MCPServer`'s
  `spec.externalAuthConfigRef`. An `MCPExternalAuthConfig` gives the strategy of its `type`: `unauthenticated`,
  `headerInjection{headerName, valueSecretRef}`, `bearerToken{tokenSecretRef}` (an `Authorization: Bearer` header),
  `tokenExchange{…, clientSecretRef}`, `upstreamInject{providerName}`. An `embeddedAuthServer` one (the seeds'
  "embedded authorization server" MCPServer) becomes the vMCP's authorization server, and that backend gets the
  first upstream's token (`upstreamInject`): a vMCP runs one authorization server, so a second, different one is an
  error. `awsSts`, `obo` and `xaa` are not supported yet.
- `spec.config`: `aggregation`, `operational`, `telemetry`, `audit`, `metadata`, `compositeTools` exactly as in a
  vMCP config file (`aggregation`, `operational` and `compositeTools` directly under `spec`, the older layout, are
  read too); `spec.sessionStorage{provider, address, db, keyPrefix, passwordRef}`.
- Cluster-only fields are accepted and not used: `serviceType`, `sessionAffinity`, `serviceAccount`,
  `podTemplateSpec`, `replicas`, `imagePullSecrets`. `telemetryConfigRef`, `embeddingServerRef`, `rateLimiting` and
  `tokenCache` are not supported yet.

How an `MCPServer` becomes a backend, first match wins:
1. annotation `hivegate.dev/command: "<command line>"` (split like a shell would, no shell run): hivegate starts it.
   With `hivegate.dev/transport` stdio (the default) it speaks MCP on stdin/stdout; with `sse` or
   `streamable-http` it must listen on `spec.url`.
2. `spec.url`: a server that is already running (`spec.transport` sse, else streamable-http).
3. `spec.image`: needs `docker` (or else `podman`) on PATH. stdio (`spec.transport`, default stdio) becomes the
   stdio backend `docker run -i --rm [-e NAME …] <image> <spec.args>`; sse / streamable-http becomes a container
   backend (`ContainerSpec`) serving on `spec.mcpPort` (else `targetPort`, `port`, 8080), published on a port the
   runtime picks. With neither runtime, loading fails naming the resource and these alternatives.
`spec.env[{name, value}]` and `spec.secrets[{name, key, targetEnvName}]` become the process environment (passed to
the container as `-e NAME`, never on the command line). The fields that configure ToolHive's per-server proxy and pod
are accepted and not applied locally, because the vMCP talks to the server directly: `oidcConfig`, `oidcConfigRef`,
`authzConfig`, `audit`, `telemetry`, `permissionProfile`, `resources`, `podTemplateSpec`, ports and the like. Put
authentication and Cedar policies on the `VirtualMCPServer`. `toolConfigRef` is not supported yet.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hivegate.authn.config import OIDCConfig
from hivegate.authserver.config import AuthServerConfig, parse_auth_server_config
from hivegate.authserver.secrets import SecretResolver, parse_secret_ref, secret_manifest_data
from hivegate.authz.config import AuthzConfig, parse_authz_config
from hivegate.config.reader import Reader
from hivegate.errors import ConfigError
from hivegate.vmcp.spec import (
    BackendAuthStrategy,
    BackendConfig,
    ContainerSpec,
    HeaderInjection,
    IncomingAuth,
    OutgoingAuth,
    UpstreamInject,
    VMCPConfig,
    backend_name,
    check_references,
    check_strategy,
    check_unique_backends,
    checked_oidc,
    http_transport,
    http_url,
    parse_aggregation,
    parse_audit,
    parse_backend,
    parse_operational,
    parse_session_storage,
    parse_strategy,
    parse_telemetry,
    reject_unsupported,
)

__all__ = ["COMMAND_ANNOTATION", "TRANSPORT_ANNOTATION", "load_manifests"]

COMMAND_ANNOTATION = "hivegate.dev/command"
TRANSPORT_ANNOTATION = "hivegate.dev/transport"
TOOLHIVE_API = "toolhive.stacklok.dev/"
KUBERNETES_ISSUER = "https://kubernetes.default.svc"
_KINDS = frozenset(
    {"VirtualMCPServer", "MCPGroup", "MCPServer", "MCPExternalAuthConfig", "MCPOIDCConfig", "ConfigMap", "Secret"}
)
_SUFFIXES = (".yaml", ".yml", ".json")
_VMCP_SPEC = ("groupRef", "config", "incomingAuth", "outgoingAuth", "authServerConfig", "sessionStorage",
              "aggregation", "operational", "compositeTools", "serviceType", "sessionAffinity", "serviceAccount",
              "podTemplateSpec", "replicas", "imagePullSecrets", "telemetryConfigRef", "embeddingServerRef",
              "rateLimiting", "tokenCache")  # fmt: skip
_VMCP_CLUSTER_ONLY = ("serviceType", "sessionAffinity", "serviceAccount", "podTemplateSpec", "replicas",
                      "imagePullSecrets")  # fmt: skip
_SERVER_PROXY_ONLY = ("oidcConfig", "oidcConfigRef", "authzConfig", "audit", "telemetry", "telemetryConfigRef",
                      "permissionProfile", "resources", "podTemplateSpec", "resourceOverrides", "serviceAccount",
                      "port", "targetPort", "proxyPort", "mcpPort", "proxyMode", "volumes", "trustProxyHeaders",
                      "authServerRef", "webhookConfigRef", "replicas", "backendReplicas", "sessionStorage",
                      "rateLimiting", "endpointPrefix", "sessionAffinity", "imagePullSecrets")  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Doc:
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


def load_manifests(
    paths: Sequence[str | Path], *, name: str | None = None, resolver: SecretResolver | None = None
) -> VMCPConfig:
    """Read the manifests in `paths` (files or folders) and build the `VirtualMCPServer` there (`name` picks one)."""
    files = list(_files(paths))
    docs = [doc for file in files for doc in _documents(file)]
    index: dict[tuple[str, str, str], _Doc] = {}
    for doc in docs:
        key = (doc.kind, doc.namespace, doc.name)
        if key in index:
            raise ConfigError(f"{doc.origin}: also defined at {index[key].origin.split(' ')[0]}")
        index[key] = doc
    servers = [d for d in docs if d.kind == "VirtualMCPServer"]
    if name is not None:
        servers = [d for d in servers if d.name == name]
    if not servers:
        which = f" named {name!r}" if name else ""
        raise ConfigError(f"no VirtualMCPServer{which} in {', '.join(str(p) for p in paths)}")
    if len(servers) > 1:
        names = ", ".join(sorted(d.name for d in servers))
        raise ConfigError(f"several VirtualMCPServers ({names}): choose one by name")
    secrets = {key[2]: secret_manifest_data(d.body, d.origin) for key, d in index.items() if key[0] == "Secret"}
    if resolver is None:
        resolver = SecretResolver(base_dir=files[0].parent if files else None, manifests=secrets)
    return _Builder(index, resolver).build(servers[0])


# -- reading -----------------------------------------------------------------------------------------------------------


def _files(paths: Sequence[str | Path]) -> Iterator[Path]:
    if not paths:
        raise ConfigError("no manifest files given")
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES)
            if not found:
                raise ConfigError(f"{path}: no .yaml, .yml or .json files in this folder")
            yield from found
        elif path.is_file():
            yield path
        else:
            raise ConfigError(f"{path}: no such file or folder")


def _documents(path: Path) -> Iterator[_Doc]:
    try:
        loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML: {first}") from None
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
        yield _Doc(kind, metadata["name"], str(namespace), f"{where} {kind}/{metadata['name']}", body)


# -- resolving ---------------------------------------------------------------------------------------------------------


class _Builder:
    """Resolves one `VirtualMCPServer` against the other resources; each resource is interpreted once."""

    def __init__(self, index: Mapping[tuple[str, str, str], _Doc], resolver: SecretResolver) -> None:
        self._index = index
        self._resolver = resolver
        self._external: dict[str, tuple[BackendAuthStrategy, AuthServerConfig | None]] = {}
        self._auth_server: AuthServerConfig | None = None
        self._auth_server_origin = ""
        self._ns = "default"
        self._to_check: list[tuple[BackendAuthStrategy, str]] = []  # once the authorization server is known

    def build(self, vmcp: _Doc) -> VMCPConfig:
        self._ns = vmcp.namespace
        spec = Reader(vmcp.spec, f"{vmcp.origin}: spec", known=_VMCP_SPEC)
        for key in _VMCP_CLUSTER_ONLY:
            spec.get(key)
        for key in ("telemetryConfigRef", "embeddingServerRef", "rateLimiting", "tokenCache"):
            if spec.get(key) not in (None, {}, []):
                raise ConfigError(f"{spec.at(key)}: not supported yet")
        config = Reader(spec.section("config"), spec.at("config"))
        for key in ("incomingAuth", "outgoingAuth"):
            if config.get(key) is not None:
                raise ConfigError(f"{config.at(key)}: set spec.{key} instead (it takes precedence in ToolHive)")
        group = self._group(spec, config)

        if spec.get("authServerConfig") is not None:
            self._auth_server = parse_auth_server_config(
                spec.get("authServerConfig"), resolver=self._resolver, where=spec.at("authServerConfig")
            )
            self._auth_server_origin = spec.at("authServerConfig")
        members = sorted(
            (d for d in self._index.values() if d.kind == "MCPServer" and d.namespace == self._ns),
            key=lambda d: d.name,
        )
        members = [d for d in members if self._group_of(d) == group]
        if not members and not config.has("backends"):
            raise ConfigError(f"{spec.at('groupRef')}: no MCPServer in namespace {self._ns} has groupRef {group!r}")
        backends = [self._backend(d) for d in members]
        backends += [parse_backend(b, f"{config.at('backends')}[{i}]") for i, b in enumerate(config.items("backends"))]
        check_unique_backends(backends[len(members) :], config.at("backends"))
        for i, extra in enumerate(backends[len(members) :]):
            if extra.name in {m.name for m in members}:
                raise ConfigError(
                    f"{config.at('backends')}[{i}].name: {extra.name!r} is also an MCPServer in the group"
                )
        names = {b.name for b in backends}
        outgoing = self._outgoing(spec.section("outgoingAuth"), spec.at("outgoingAuth"), members, names)
        for strategy, where in self._to_check:
            check_strategy(strategy, self._auth_server, where)
        incoming = self._incoming(spec.section("incomingAuth", required=True), spec.at("incomingAuth"))

        paths: dict[str, str] = {"outgoingAuth": spec.at("outgoingAuth"), "incomingAuth": spec.at("incomingAuth")}
        sections: dict[str, Any] = {}
        for key in ("aggregation", "operational", "compositeTools"):
            if spec.get(key) is not None and config.get(key) is not None:
                raise ConfigError(f"{spec.at(key)}: also set as spec.config.{key}; keep one")
            source = spec if spec.get(key) is not None else config
            paths[key] = source.at(key)
            sections[key] = source.get(key)
        if sections["compositeTools"] not in (None, []):
            raise ConfigError(f"{paths['compositeTools']}: not supported yet")
        cfg = VMCPConfig(
            name=config.text("name") or vmcp.name,
            group_ref=group,
            backends=tuple(backends),
            incoming_auth=incoming,
            outgoing_auth=outgoing,
            aggregation=parse_aggregation(
                _mapping(sections["aggregation"], paths["aggregation"]), paths["aggregation"]
            ),
            operational=parse_operational(
                _mapping(sections["operational"], paths["operational"]), paths["operational"]
            ),
            session_storage=parse_session_storage(
                spec.section("sessionStorage"), spec.at("sessionStorage"), self._resolver
            ),
            auth_server=self._auth_server,
            telemetry=parse_telemetry(config.section("telemetry"), config.at("telemetry"))
            if config.has("telemetry")
            else None,
            audit=parse_audit(config.section("audit"), config.at("audit")) if config.has("audit") else None,
            metadata=config.string_map("metadata"),
        )
        reject_unsupported(config)
        config.done()
        spec.done()
        check_references(cfg, paths=paths)
        return cfg

    # -- group and backends --

    def _group(self, spec: Reader, config: Reader) -> str:
        ref = spec.get("groupRef")
        name = ref.get("name") if isinstance(ref, Mapping) else ref
        if ref is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"{spec.at('groupRef')}: must be {{name: <MCPGroup>}}")
        from_config = config.text("groupRef")
        if name and from_config and name != from_config:
            raise ConfigError(f"{config.at('groupRef')}: {from_config!r} differs from spec.groupRef {name!r}")
        group = name or from_config
        if not group:
            raise ConfigError(f"{spec.at('groupRef')}: required")
        self._lookup("MCPGroup", group, spec.at("groupRef"))
        return str(group)

    @staticmethod
    def _group_of(doc: _Doc) -> str | None:
        spec = doc.spec if isinstance(doc.spec, Mapping) else {}
        ref = spec.get("groupRef")
        name = ref.get("name") if isinstance(ref, Mapping) else ref
        return name if isinstance(name, str) else None

    def _backend(self, doc: _Doc) -> BackendConfig:
        s = Reader(doc.spec, f"{doc.origin}: spec")
        for key in _SERVER_PROXY_ONLY:
            s.get(key)
        s.get("groupRef")
        s.get("externalAuthConfigRef")  # read by _outgoing
        if s.get("toolConfigRef") is not None:
            raise ConfigError(f"{s.at('toolConfigRef')}: MCPToolConfig is not supported yet; use aggregation.tools")
        name = backend_name(doc.name, f"{doc.origin}: metadata.name")
        url, image, transport = s.text("url"), s.text("image"), s.text("transport")
        env = self._environment(s) if command_line_of(doc) is not None or not url else _skip(s, "env", "secrets")
        args = tuple(s.strings("args"))
        annotations = doc.annotations
        command_line = command_line_of(doc)
        backend: BackendConfig
        if command_line is not None:
            where = f"{doc.origin}: metadata.annotations.{COMMAND_ANNOTATION}"
            try:
                argv = shlex.split(command_line) if isinstance(command_line, str) else []
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            if not argv:
                raise ConfigError(f"{where}: must be a command line")
            how = annotations.get(TRANSPORT_ANNOTATION) or "stdio"
            if how == "stdio":
                if url:
                    raise ConfigError(f"{s.at('url')}: not used with a stdio {COMMAND_ANNOTATION}")
                backend = BackendConfig(name, "stdio", command=argv[0], args=tuple(argv[1:]), env=env)
            else:
                at = f"{doc.origin}: metadata.annotations.{TRANSPORT_ANNOTATION}"
                if not url:
                    raise ConfigError(f"{s.at('url')}: required: where the {how} server started by the command listens")
                backend = BackendConfig(
                    name, http_transport(str(how), at), url=http_url(url, s.at("url")), command=argv[0],
                    args=tuple(argv[1:]), env=env,
                )  # fmt: skip
        elif url:
            backend = BackendConfig(name, http_transport(transport, s.at("transport")), url=http_url(url, s.at("url")))
        elif image:
            backend = self._container(doc, s, image, transport or "stdio", args, env)
        else:
            raise ConfigError(f"{s.at('image')}: required (or spec.url, or the annotation {COMMAND_ANNOTATION})")
        s.done()
        return backend

    @staticmethod
    def _container(
        doc: _Doc, s: Reader, image: str, transport: str, args: tuple[str, ...], env: Mapping[str, str]
    ) -> BackendConfig:
        runtime = shutil.which("docker") or shutil.which("podman")
        if runtime is None:
            raise ConfigError(
                f"{s.at('image')}: running {image!r} needs docker or podman on PATH, and neither was found; "
                f"set spec.url to where the server already runs, or the annotation {COMMAND_ANNOTATION} to a local "
                "command that starts it"
            )
        if transport == "stdio":
            flags = [x for key in env for x in ("-e", key)]
            return BackendConfig(
                doc.name, "stdio", command=runtime, args=("run", "-i", "--rm", *flags, image, *args), env=env
            )
        port = next((s.get(k) for k in ("mcpPort", "targetPort", "port") if s.get(k) is not None), 8080)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"{s.where}: the server's port must be a number between 1 and 65535, got {port!r}")
        container = ContainerSpec(runtime, image, port, args, env)
        return BackendConfig(doc.name, http_transport(transport, s.at("transport")), container=container)

    def _environment(self, s: Reader) -> dict[str, str]:
        env: dict[str, str] = {}
        for i, item in enumerate(s.items("env")):
            e = Reader(item, f"{s.at('env')}[{i}]")
            if e.get("valueFrom") is not None:
                raise ConfigError(f"{e.at('valueFrom')}: not supported; use spec.secrets for Secret values")
            env[e.text("name", required=True)] = e.text("value")
            e.done()
        for i, item in enumerate(s.items("secrets")):
            at = f"{s.at('secrets')}[{i}]"
            e = Reader(item, at)
            ref = {"name": e.text("name", required=True), "key": e.text("key", required=True)}
            env[e.text("targetEnvName") or ref["key"]] = self._resolver.resolve_text(parse_secret_ref(ref, at), at)
            e.done()
        return env

    # -- outgoing auth --

    def _outgoing(self, data: Mapping[str, Any], where: str, members: Sequence[_Doc], names: set[str]) -> OutgoingAuth:
        r = Reader(data, where)
        source = r.choice("source", ("discovered", "inline")) or "discovered"
        discovered = {d.name: s for d in members if (s := self._discovered(d)) is not None}
        default: BackendAuthStrategy | None = None
        if r.get("default") is not None:
            default = self._backend_auth(r.get("default"), r.at("default"), None)
        backends = dict(discovered) if source == "discovered" else {}
        for backend, value in r.section("backends").items():
            at = f"{r.at('backends')}.{backend}"
            if str(backend) not in names:
                raise ConfigError(f"{at}: no backend named {backend!r} (known: {', '.join(sorted(names))})")
            strategy = self._backend_auth(value, at, discovered.get(str(backend)))
            if strategy is None:
                backends.pop(str(backend), None)
            else:
                backends[str(backend)] = strategy
        r.done()
        return OutgoingAuth(source, default, backends)  # type: ignore[arg-type]

    def _discovered(self, doc: _Doc) -> BackendAuthStrategy | None:
        spec = doc.spec if isinstance(doc.spec, Mapping) else {}
        ref = spec.get("externalAuthConfigRef")
        if ref is None:
            return None
        where = f"{doc.origin}: spec.externalAuthConfigRef"
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
            raise ConfigError(f"{where}: must be {{name: <MCPExternalAuthConfig>}}")
        return self._external_strategy(ref["name"], where)

    def _backend_auth(
        self, data: Any, where: str, discovered: BackendAuthStrategy | None
    ) -> BackendAuthStrategy | None:
        r = Reader(data, where)
        kind = r.choice("type", ("discovered", "externalAuthConfigRef"), required=True)
        ref = Reader(
            r.section("externalAuthConfigRef", required=kind == "externalAuthConfigRef"), r.at("externalAuthConfigRef")
        )
        ref_name = ref.text("name", required=kind == "externalAuthConfigRef")
        ref.done()
        r.done()
        if kind == "discovered":
            return discovered
        return self._external_strategy(ref_name, r.at("externalAuthConfigRef.name"))

    def _external_strategy(self, name: str, where: str) -> BackendAuthStrategy:
        doc = self._lookup("MCPExternalAuthConfig", name, where)
        if name not in self._external:
            self._external[name] = self._external_config(doc)
        strategy, server = self._external[name]
        if server is not None:
            if self._auth_server is None:
                self._auth_server, self._auth_server_origin = server, doc.origin
            elif self._auth_server is not server:
                raise ConfigError(
                    f"{where}: {doc.origin} is another embedded authorization server than the one at "
                    f"{self._auth_server_origin}; a vMCP runs one"
                )
        self._to_check.append((strategy, f"{doc.origin}: spec"))
        return strategy

    def _external_config(self, doc: _Doc) -> tuple[BackendAuthStrategy, AuthServerConfig | None]:
        spec = doc.spec
        where = f"{doc.origin}: spec"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: must be a mapping")
        kind = spec.get("type")
        if kind == "embeddedAuthServer":
            r = Reader(spec, where)
            r.get("type")
            server = parse_auth_server_config(
                r.section("embeddedAuthServer", required=True),
                resolver=self._resolver,
                where=r.at("embeddedAuthServer"),
            )
            r.done()
            return UpstreamInject(server.upstreams[0].name), server
        if kind == "bearerToken":
            r = Reader(spec, where)
            r.get("type")
            b = Reader(r.section("bearerToken", required=True), r.at("bearerToken"))
            at = b.at("tokenSecretRef")
            token = self._resolver.resolve_text(parse_secret_ref(b.get("tokenSecretRef"), at), at)
            b.done()
            r.done()
            return HeaderInjection("Authorization", f"Bearer {token}"), None
        return parse_strategy(spec, where, self._resolver), None

    # -- incoming auth --

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

    def _oidc_inline(self, data: Any, where: str) -> OIDCConfig:
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
        audience = s.text("audience")
        scopes = tuple(s.strings("scopes")) or ("openid",)
        fields = self._oidc_fields(s, at, kubernetes=kind == "kubernetes")
        r.done()
        cfg = OIDCConfig(audience=audience or None, scopes=scopes, resource_url=resource, **fields)
        if not cfg.audience:
            raise ConfigError(f"{at}.audience: required (tokens must be checked to be issued for this vMCP)")
        return checked_oidc(cfg, where)

    def _oidc_fields(self, data: Any, where: str, *, kubernetes: bool) -> dict[str, Any]:
        """The provider fields shared by MCPOIDCConfig and the inline/ConfigMap/kubernetes `oidcConfig` forms."""
        r = data if isinstance(data, Reader) else Reader(data, where)
        if kubernetes:
            for key in ("serviceAccount", "namespace"):
                if r.get(key):
                    raise ConfigError(f"{r.at(key)}: restricting callers to one service account is not supported yet")
            r.get("useClusterAuth")  # the authenticator uses the pod's CA and token when it runs in a pod
            fields: dict[str, Any] = {"issuer": r.text("issuer") or KUBERNETES_ISSUER}
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
            private = r.flag("jwksAllowPrivateIP", default=False)
            fields["jwks_allow_private_ip"] = r.flag("protectedResourceAllowPrivateIP", default=False) or private
            fields["insecure_allow_http"] = r.flag("insecureAllowHTTP", default=False)
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
                raise ConfigError(f"{origin}: not valid {'JSON' if key.endswith('.json') else 'YAML'}: {exc}") from None
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

    # -- lookups --

    def _lookup(self, kind: str, name: str, where: str) -> _Doc:
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


def command_line_of(doc: _Doc) -> Any:
    """The `hivegate.dev/command` annotation, or None."""
    return doc.annotations.get(COMMAND_ANNOTATION)


def _skip(r: Reader, *keys: str) -> dict[str, str]:
    """Mark keys as read that mean nothing for this backend (the environment of a server hivegate does not start)."""
    for key in keys:
        r.get(key)
    return {}


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a mapping")
    return value
