"""The outgoing auth of a `VirtualMCPServer`: `spec.outgoingAuth` and the `MCPExternalAuthConfig`s it reaches.

`ExternalAuthMixin._outgoing` gives each backend its strategy: discovered from its `MCPServer`'s
`spec.externalAuthConfigRef`, or named in `spec.outgoingAuth`. An `MCPExternalAuthConfig` is read once into a
strategy (as a vMCP config file's strategy is read, plus `bearerToken`); an `embeddedAuthServer` one becomes the
vMCP's authorization server, of which there is one. The keys are listed in `virtualmcpserver`'s docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hivegate.authserver.secrets import parse_secret_ref
from hivegate.authserver.settings import AuthServerConfig, parse_auth_server_config
from hivegate.config.reader import Reader
from hivegate.errors import ConfigError
from hivegate.vmcp.manifests.documents import BuilderBase, Doc
from hivegate.vmcp.spec import BackendAuthStrategy, HeaderInjection, OutgoingAuth, UpstreamInject, parse_strategy

__all__ = ["ExternalAuthMixin"]


class ExternalAuthMixin(BuilderBase):
    """Reads `spec.outgoingAuth` and the `MCPExternalAuthConfig`s it (or a backend's `MCPServer`) names."""

    def _outgoing(self, data: Mapping[str, Any], where: str, members: Sequence[Doc], names: set[str]) -> OutgoingAuth:
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

    def _discovered(self, doc: Doc) -> BackendAuthStrategy | None:
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

    def _external_config(self, doc: Doc) -> tuple[BackendAuthStrategy, AuthServerConfig | None]:
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
