"""`hivegate run -f`: an `MCPServer` or `MCPRemoteProxy` manifest as the gateway that ToolHive's proxy would be.

`read_servers(paths)` reads the documents (with their `Secret`s and `ConfigMap`s) and lists the runnable resources;
`build_server(manifests, doc)` turns one into a `ManifestServer`, which `hivegate.cli.run_file` merges with the
command line into a `RunConfig`. Errors name `<file>:doc<N> <Kind>/<name>: <field path>`.

How the fields map (the proxy's and pod's other fields: `proxyfields`):
- the backend: an `MCPServer` as for `vmcp serve` (`mcpserver`: the `hivegate.dev/command` annotation, `spec.url`,
  or `spec.image` run as `docker run -i --rm …` for stdio; an HTTP image is not supported by `run -f` yet), with
  `env` and `secrets` as its environment; an `MCPRemoteProxy`'s `remoteUrl` (`remoteURL`) with `transport`. The
  annotation `hivegate.dev/attach: NAMESPACE/POD/CONTAINER` (the operator's, on a stdio `image:`): the server runs
  in that pod, its stdin/stdout reached through the API server's `pods/attach` (`hivegate.backends.attach`).
- `proxyPort` (or the older `port`) → `--port`; `proxyMode` → `--proxy-mode` (default: streamable-http);
  `groupRef` → `--group`; `tools` (the older list) → `--tools`.
- `oidcConfig` (`inline`, `kubernetes`, `configMap`) or `oidcConfigRef` (an `MCPOIDCConfig`) → the OIDC settings.
- `authzConfig` (`inline`, `configMap`) → the Cedar policies, held in memory (`authz.store.config_source`).
- `externalAuthConfigRef` → an `MCPExternalAuthConfig`: `embeddedAuthServer` runs the embedded authorization server
  (then `oidcConfig`, if given, must name its issuer and may set `resourceUrl`), and an HTTP backend gets the
  caller's token of its first upstream; `tokenExchange`, `headerInjection`, `bearerToken`, `upstreamInject` and
  `unauthenticated` are the backend's credential (an HTTP backend only). `authServerRef` names an
  `embeddedAuthServer` config too. `headerForward{addPlaintextHeaders, addHeadersFromSecret}` → headers of the
  gateway's own (not together with another credential: a backend gets one).
- `sessionStorage{provider: redis, address (or url), db, keyPrefix [hivegate:<kind>:<namespace>:<name>:],
  passwordRef}`: the gateway records its client sessions in Redis, and a replica that gets a request for a session
  another opened resumes it for its owner (`hivegate.backends.shared_sessions`), when clients speak streamable-http
  to a stdio or SSE server. A streamable-http server keeps its own sessions (every gateway forwards them as they
  are) and an SSE client stays on its gateway: there it is not used, and a warning says so.
- `allowPrivateEndpoint`: accepted; hivegate does not restrict the remote URL's address, and says so in a warning
  when it is a private one and the field is not true.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hivegate.authn.oidc_config import OIDCConfig
from hivegate.authserver.secrets import SecretResolver, parse_secret_ref, secret_manifest_data
from hivegate.config.reader import Reader
from hivegate.errors import ConfigError
from hivegate.vmcp.manifests import proxyfields
from hivegate.vmcp.manifests.documents import Doc, find_files, read_documents
from hivegate.vmcp.manifests.externalauth import ExternalAuthMixin
from hivegate.vmcp.manifests.mcpserver import COMMAND_ANNOTATION, TRANSPORT_ANNOTATION, MCPServerMixin
from hivegate.vmcp.manifests.oidcconfig import OIDCConfigMixin
from hivegate.vmcp.spec import HeaderInjection, TokenExchange, Unauthenticated, UpstreamInject, check_strategy
from hivegate.vmcp.spec.model import SessionStorage
from hivegate.vmcp.spec.sections import parse_session_storage
from hivegate.vmcp.spec.values import http_transport, http_url

if TYPE_CHECKING:
    from hivegate.authserver.settings import AuthServerConfig
    from hivegate.authz.policy_config import AuthzConfig
    from hivegate.config.run import ProxyMode, Transport

__all__ = ["ATTACH_ANNOTATION", "RUNNABLE", "ManifestServer", "Manifests", "build_server", "read_servers"]

RUNNABLE = ("MCPServer", "MCPRemoteProxy")
_BACKEND_KEYS = ("image", "url", "transport", "args", "env", "secrets", "mcpPort", "targetPort")
# the fields of one kind that the other does not have
_NOT_OF = {
    "MCPServer": ("remoteUrl", "remoteURL", "allowPrivateEndpoint", "headerForward"),
    "MCPRemoteProxy": (
        *(k for k in _BACKEND_KEYS if k != "transport"),
        "port",
        "proxyMode",
        "tools",
        "backendReplicas",
        "permissionProfile",
    ),
}
ATTACH_ANNOTATION = "hivegate.dev/attach"
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
_OWN_HEADERS = frozenset({"host", "connection", "content-length", "transfer-encoding", "content-type", "accept",
                          "mcp-session-id", "mcp-protocol-version", "upgrade", "te", "trailer"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Manifests:
    """The resources of the files read, and the secrets they can reference."""

    index: Mapping[tuple[str, str, str], Doc]
    resolver: SecretResolver
    servers: tuple[Doc, ...]  # the MCPServers and MCPRemoteProxies, in file order


@dataclass(frozen=True, slots=True)
class ManifestServer:
    """What one resource says about its gateway; None/empty: the manifest does not say (the flags' default holds).

    `fields` are the `spec` keys given (plus `embeddedAuthServer` when one runs), for the conflicts with flags."""

    kind: str
    name: str
    origin: str
    transport: Transport
    command: tuple[str, ...] = ()
    url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    port: int | None = None
    proxy_mode: ProxyMode | None = None
    auth: OIDCConfig | None = None
    auth_server: AuthServerConfig | None = field(default=None, repr=False)
    authz: AuthzConfig | None = None
    authz_source: str = ""
    token_exchange: TokenExchange | None = field(default=None, repr=False)
    forward_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    upstream_inject: str | None = None
    attach: str | None = None  # NAMESPACE/POD/CONTAINER: the stdio server runs in that pod (`pods/attach`)
    audit: bool | None = None
    telemetry: proxyfields.Telemetry | None = None
    tools: tuple[str, ...] = ()
    group: str | None = None
    fields: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()
    session_storage: SessionStorage | None = field(default=None, repr=False)  # redis: shared by the replicas


def read_servers(paths: Sequence[str | Path]) -> Manifests:
    """Read the manifests in `paths` (files or folders) and index their resources."""
    files = list(find_files(paths))
    index: dict[tuple[str, str, str], Doc] = {}
    servers: list[Doc] = []
    for doc in (doc for file in files for doc in read_documents(file)):
        key = (doc.kind, doc.namespace, doc.name)
        if key in index:
            raise ConfigError(f"{doc.origin}: also defined at {index[key].origin.split(' ')[0]}")
        index[key] = doc
        if doc.kind in RUNNABLE:
            servers.append(doc)
    secrets = {key[2]: secret_manifest_data(d.body, d.origin) for key, d in index.items() if key[0] == "Secret"}
    resolver = SecretResolver(base_dir=files[0].parent if files else None, manifests=secrets)
    return Manifests(index, resolver, tuple(servers))


def build_server(manifests: Manifests, doc: Doc) -> ManifestServer:
    """The gateway `doc` (an `MCPServer` or `MCPRemoteProxy` of `manifests`) describes."""
    return _Builder(manifests.index, manifests.resolver).build(doc)


class _Builder(MCPServerMixin, ExternalAuthMixin, OIDCConfigMixin):
    """Resolves one runnable resource against the others; the readers are those of `vmcp serve`'s manifests."""

    def build(self, doc: Doc) -> ManifestServer:
        self._ns = doc.namespace
        spec = Reader(doc.spec, f"{doc.origin}: spec")
        warnings: list[str] = []
        for key in _NOT_OF[doc.kind]:
            if spec.has(key):
                raise ConfigError(f"{spec.at(key)}: unknown field (of {doc.kind})")
        proxyfields.not_supported(spec)
        proxyfields.cluster_only(spec, warnings)
        fields = {str(k) for k, v in (doc.spec or {}).items() if v not in (None, "", {}, [])}
        server = self._backend_of(doc, spec, warnings)
        port = spec.integer("proxyPort", default=-1, minimum=0, maximum=65535)
        older = spec.integer("port", default=-1, minimum=0, maximum=65535)  # ToolHive's older name of proxyPort
        if port >= 0 and older >= 0 and port != older:
            raise ConfigError(f"{spec.at('port')}: {older} differs from proxyPort {port}; keep one")
        port = max(port, older)
        mode = spec.choice("proxyMode", ("streamable-http", "sse")) or None
        if mode is not None and server.transport != "stdio":
            raise ConfigError(f"{spec.at('proxyMode')}: only used with a stdio server (clients get {server.transport})")
        group = spec.get("groupRef")
        group_name = group.get("name") if isinstance(group, Mapping) else group
        if group is not None and (not isinstance(group_name, str) or not group_name):
            raise ConfigError(f"{spec.at('groupRef')}: must be {{name: <MCPGroup>}}")
        tools = tuple(spec.strings("tools"))
        auth_server = self._embedded(spec)
        if auth_server is not None:
            fields.add("embeddedAuthServer")
        auth = self._incoming_auth(spec, auth_server)
        authz, authz_source = self._authz_of(spec)
        server = replace(
            server,
            port=None if port < 0 else port,
            proxy_mode=mode,  # type: ignore[arg-type]
            auth=auth,
            auth_server=auth_server,
            authz=authz,
            authz_source=authz_source,
            audit=proxyfields.audit(spec),
            telemetry=proxyfields.telemetry(spec, warnings),
            tools=tools,
            group=group_name,
            fields=frozenset(fields),
        )
        server = self._credential(spec, server)
        storage = self._session_storage(doc, spec, server, warnings)
        spec.done()
        return replace(server, warnings=tuple(warnings), session_storage=storage)

    def _session_storage(
        self, doc: Doc, spec: Reader, server: ManifestServer, warnings: list[str]
    ) -> SessionStorage | None:
        """`spec.sessionStorage`: with redis, the sessions the gateway holds are recorded there, so another replica
        resumes them (a stdio or SSE server, clients on streamable-http); where a session cannot move, a warning."""
        if spec.get("sessionStorage") is None:
            return None
        where = spec.at("sessionStorage")
        given = spec.section("sessionStorage")
        storage = parse_session_storage(given, where, self._resolver, extras=False)
        if storage.provider != "redis":
            return None
        if not given.get("keyPrefix"):  # one Redis for many servers: each its own records
            storage = replace(storage, key_prefix=f"hivegate:{doc.kind}:{doc.namespace}:{doc.name}:")
        if server.transport == "streamable-http":
            warnings.append(f"{where}: not used: the server keeps its sessions (streamable-http), and every "
                            "gateway in front of it forwards them as they are")  # fmt: skip
            return None
        if server.proxy_mode == "sse":
            warnings.append(f"{where}: not used: with proxyMode sse a client's stream stays on the gateway it opened")
            return None
        return storage

    def _backend_of(self, doc: Doc, spec: Reader, warnings: list[str]) -> ManifestServer:
        if doc.kind == "MCPRemoteProxy":
            key = "remoteURL" if spec.has("remoteURL") else "remoteUrl"
            url = http_url(spec.text(key, required=True), spec.at(key))
            transport = http_transport(spec.text("transport"), spec.at("transport"))
            if spec.get("allowPrivateEndpoint") is not True and _private(url):
                warnings.append(
                    f"{spec.at(key)}: a private or loopback address: ToolHive refuses it without "
                    "allowPrivateEndpoint: true; hivegate does not restrict it"
                )
            spec.get("allowPrivateEndpoint")
            return ManifestServer(doc.kind, doc.name, doc.origin, transport, url=url)
        body = {k: v for k, v in (doc.spec or {}).items() if k in _BACKEND_KEYS}
        for key in _BACKEND_KEYS:
            spec.get(key)
        attach = doc.annotations.get(ATTACH_ANNOTATION)
        if attach is not None:  # the operator's: the image runs in a pod of its own
            from hivegate.backends.attach import AttachTarget

            where = f"{doc.origin}: metadata.annotations.{ATTACH_ANNOTATION}"
            target = AttachTarget.parse(attach if isinstance(attach, str) else "", where)
            if body.get("transport") not in (None, "stdio"):
                raise ConfigError(f"{spec.at('transport')}: {ATTACH_ANNOTATION} attaches to a stdio server")
            return ManifestServer(doc.kind, doc.name, doc.origin, "stdio", attach=str(target))
        backend = self._backend(Doc(doc.kind, doc.name, doc.namespace, doc.origin, {**doc.body, "spec": body}))
        if backend.kind == "container":
            raise ConfigError(
                f"{spec.at('image')}: an image serving {backend.transport} cannot run under `hivegate run -f` yet; "
                f"set spec.url to where it runs, or the annotation {COMMAND_ANNOTATION} to a local command"
            )
        if backend.kind == "launched":
            raise ConfigError(
                f"{doc.origin}: metadata.annotations.{TRANSPORT_ANNOTATION}: `hivegate run -f` starts stdio commands "
                "only; run the server yourself and set spec.url"
            )
        wanted = spec.get("transport")
        if backend.kind == "stdio" and doc.annotations.get(COMMAND_ANNOTATION) and wanted not in (None, "stdio"):
            warnings.append(
                f"{spec.at('transport')}: {wanted}: the server started by {COMMAND_ANNOTATION} speaks stdio "
                f"(set {TRANSPORT_ANNOTATION} to run it otherwise)"
            )
        if backend.kind == "stdio":
            command = (backend.command or "", *backend.args)
            return ManifestServer(doc.kind, doc.name, doc.origin, "stdio", command=command, env=dict(backend.env))
        return ManifestServer(doc.kind, doc.name, doc.origin, backend.transport, url=backend.url)

    def _embedded(self, spec: Reader) -> AuthServerConfig | None:
        """The embedded authorization server of `authServerRef` or of an `embeddedAuthServer` external config."""
        ref = spec.get("authServerRef")
        if ref is not None:
            r = Reader(ref, spec.at("authServerRef"))
            r.choice("kind", ("MCPExternalAuthConfig",))
            name = r.text("name", required=True)
            r.done()
            doc = self._lookup("MCPExternalAuthConfig", name, r.at("name"))
            if (doc.spec or {}).get("type") != "embeddedAuthServer":
                raise ConfigError(f"{r.at('name')}: {doc.origin} is not of type embeddedAuthServer")
            self._external_strategy(name, r.at("name"))
        external = spec.get("externalAuthConfigRef")
        if external is not None:
            r = Reader(external, spec.at("externalAuthConfigRef"))
            self._external_strategy(r.text("name", required=True), r.at("name"))
            r.done()
        return self._auth_server

    def _incoming_auth(self, spec: Reader, auth_server: AuthServerConfig | None) -> OIDCConfig | None:
        inline, ref = spec.get("oidcConfig"), spec.get("oidcConfigRef")
        if inline is not None and ref is not None:
            raise ConfigError(f"{spec.at('oidcConfigRef')}: give oidcConfig or oidcConfigRef, not both")
        if auth_server is not None:
            return self._embedded_oidc(spec, auth_server)
        if ref is not None:
            return self._oidc_ref(ref, spec.at("oidcConfigRef"))
        if inline is not None:
            return self._oidc_inline(inline, spec.at("oidcConfig"))
        return None

    def _embedded_oidc(self, spec: Reader, auth_server: AuthServerConfig) -> OIDCConfig:
        """With the embedded authorization server, `oidcConfig` may only name its issuer (ToolHive's seeds do)."""
        resource = None
        if spec.get("oidcConfigRef") is not None:
            raise ConfigError(f"{spec.at('oidcConfigRef')}: the embedded authorization server checks its own tokens")
        if spec.get("oidcConfig") is not None:
            r = Reader(spec.get("oidcConfig"), spec.at("oidcConfig"))
            if r.choice("type", ("inline",)) != "inline":
                raise ConfigError(f"{r.at('type')}: inline, naming the embedded authorization server's issuer")
            resource = r.text("resourceUrl") or None
            i = Reader(r.section("inline", required=True), r.at("inline"))
            issuer = i.text("issuer", required=True)
            if issuer.rstrip("/") != auth_server.issuer.rstrip("/"):
                raise ConfigError(
                    f"{i.at('issuer')}: {issuer!r} is not the embedded authorization server's issuer "
                    f"{auth_server.issuer!r} ({auth_server.where}.issuer)"
                )
            i.done()
            r.done()
        return OIDCConfig(issuer=auth_server.issuer, resource_url=resource)

    def _authz_of(self, spec: Reader) -> tuple[AuthzConfig | None, str]:
        authz, primary = self._authz(spec.get("authzConfig"), spec.at("authzConfig"))
        if primary is not None:
            raise ConfigError(f"{spec.at('authzConfig')}.inline.primaryUpstreamProvider: used by vmcp serve only")
        return authz, spec.at("authzConfig")

    def _credential(self, spec: Reader, server: ManifestServer) -> ManifestServer:
        """The backend's own credential: the external auth config's strategy, or `headerForward`."""
        headers = self._header_forward(spec)
        external = spec.get("externalAuthConfigRef")
        strategy = None
        if external is not None:
            name = str(external.get("name")) if isinstance(external, Mapping) else ""
            strategy = self._external[name][0]
            check_strategy(strategy, self._auth_server, spec.at("externalAuthConfigRef"))
            if self._external[name][1] is not None and server.transport == "stdio":
                strategy = None  # the embedded authorization server only: there is no HTTP request to add a token to
        if isinstance(strategy, Unauthenticated):
            strategy = None
        if strategy is not None and headers:
            raise ConfigError(
                f"{spec.at('headerForward')}: cannot be combined with externalAuthConfigRef: the backend gets one "
                "credential"
            )
        if (strategy is not None or headers) and server.transport == "stdio":
            key = "headerForward" if headers else "externalAuthConfigRef"
            raise ConfigError(f"{spec.at(key)}: a stdio server has no HTTP requests to authenticate")
        if (strategy is not None or headers) and server.transport == "sse":
            key = "headerForward" if headers else "externalAuthConfigRef"
            raise ConfigError(f"{spec.at(key)}: a legacy SSE backend gets no credential; use streamable-http")
        if isinstance(strategy, TokenExchange) and server.auth is None and server.auth_server is None:
            raise ConfigError(
                f"{spec.at('externalAuthConfigRef')}: token exchange takes the caller's token; set oidcConfig"
            )
        if isinstance(strategy, HeaderInjection):
            headers = ((strategy.header_name, strategy.header_value),)
        return replace(
            server,
            forward_headers=headers,
            token_exchange=strategy if isinstance(strategy, TokenExchange) else None,
            upstream_inject=strategy.provider_name if isinstance(strategy, UpstreamInject) else None,
        )

    def _header_forward(self, spec: Reader) -> tuple[tuple[str, str], ...]:
        if spec.get("headerForward") is None:
            return ()
        h = Reader(spec.section("headerForward"), spec.at("headerForward"))
        headers = list(h.string_map("addPlaintextHeaders").items())
        for i, item in enumerate(h.items("addHeadersFromSecret")):
            at = f"{h.at('addHeadersFromSecret')}[{i}]"
            e = Reader(item, at)
            name = e.text("headerName", required=True)
            ref = e.get("valueSecretRef")
            headers.append((name, self._resolver.resolve_text(parse_secret_ref(ref, f"{at}.valueSecretRef"), at)))
            e.done()
        for name, value in headers:
            if not _HEADER_NAME.fullmatch(name) or name.lower() in _OWN_HEADERS:
                raise ConfigError(f"{h.where}: {name[:40]!r} is not a header the gateway can set")
            if any(c in value for c in "\r\n\0"):
                raise ConfigError(f"{h.where}: the value of {name} must be one line of text")
        h.done()
        return tuple(headers)


def _private(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith((".localhost", "cluster.local")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local
