"""The `VirtualMCPServer`: `load_manifests`, and the builder that turns one into a `VMCPConfig`.

`load_manifests` reads the documents, indexes them, picks the `VirtualMCPServer` and hands it to `_Builder`, which
combines the reader of each kind (`group`, `mcpserver`, `externalauth`, `oidcconfig`), reads the rest of its `spec`
with the vMCP config file's own section parsers (`hivegate.vmcp.spec`) and runs the same cross-reference checks.

How the `VirtualMCPServer` maps:
- `metadata.name` → `name` (`spec.config.name` wins when set); `spec.groupRef.name` (or `spec.config.groupRef`) →
  `group_ref`; the `MCPGroup` must exist, and every `MCPServer` whose `spec.groupRef` names it becomes a backend
  named after the `MCPServer`, next to any static `spec.config.backends`; its own `oidcConfig`/`authzConfig` are
  enforced as its own proxy would (`mcpserver`).
- `spec.incomingAuth.type` anonymous | oidc (| local). OIDC settings come from `oidcConfigRef{name, audience,
  scopes, resourceUrl}` → an `MCPOIDCConfig` (`inline{issuer, jwksUrl, introspectionUrl, clientId, clientSecretRef,
  jwksAuthTokenPath, jwksAllowPrivateIP, protectedResourceAllowPrivateIP, insecureAllowHTTP}` or
  `kubernetesServiceAccount{issuer [https://kubernetes.default.svc], jwksUrl, introspectionUrl, serviceAccount,
  namespace}`: with either of the last two, only that service account or namespace may call), or from the older
  inline `oidcConfig{type: inline | kubernetes | configMap, resourceUrl, …}` (`kubernetes` has the same fields, and
  `audience` defaults to `toolhive` there, as in ToolHive; `configMap{name, key [oidc.json]}`
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
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hivegate.authserver.secrets import SecretResolver, secret_manifest_data
from hivegate.authserver.settings import parse_auth_server_config
from hivegate.config.reader import Reader, as_mapping
from hivegate.errors import ConfigError
from hivegate.vmcp.manifests.documents import Doc, find_files, read_documents
from hivegate.vmcp.manifests.externalauth import ExternalAuthMixin
from hivegate.vmcp.manifests.group import GroupMixin
from hivegate.vmcp.manifests.mcpserver import MCPServerMixin
from hivegate.vmcp.manifests.oidcconfig import OIDCConfigMixin
from hivegate.vmcp.spec import (
    VMCPConfig,
    check_references,
    check_strategy,
    check_unique_backends,
    parse_aggregation,
    parse_audit,
    parse_backend,
    parse_operational,
    parse_session_storage,
    parse_telemetry,
    reject_unsupported,
)

__all__ = ["load_manifests"]

_VMCP_SPEC = ("groupRef", "config", "incomingAuth", "outgoingAuth", "authServerConfig", "sessionStorage",
              "aggregation", "operational", "compositeTools", "serviceType", "sessionAffinity", "serviceAccount",
              "podTemplateSpec", "replicas", "imagePullSecrets", "telemetryConfigRef", "embeddingServerRef",
              "rateLimiting", "tokenCache")  # fmt: skip
_VMCP_CLUSTER_ONLY = ("serviceType", "sessionAffinity", "serviceAccount", "podTemplateSpec", "replicas",
                      "imagePullSecrets")  # fmt: skip


def load_manifests(
    paths: Sequence[str | Path], *, name: str | None = None, resolver: SecretResolver | None = None
) -> VMCPConfig:
    """Read the manifests in `paths` (files or folders) and build the `VirtualMCPServer` there (`name` picks one)."""
    files = list(find_files(paths))
    docs = [doc for file in files for doc in read_documents(file)]
    for doc in docs:
        if doc.kind == "MCPRemoteProxy":
            raise ConfigError(f"{doc.origin}: not supported by vmcp serve yet (`hivegate run -f` runs it on its own)")
    index: dict[tuple[str, str, str], Doc] = {}
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


class _Builder(GroupMixin, MCPServerMixin, ExternalAuthMixin, OIDCConfigMixin):
    """Resolves one `VirtualMCPServer` against the other resources; each resource is interpreted once."""

    def build(self, vmcp: Doc) -> VMCPConfig:
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
                as_mapping(sections["aggregation"], paths["aggregation"]), paths["aggregation"]
            ),
            operational=parse_operational(
                as_mapping(sections["operational"], paths["operational"]), paths["operational"]
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
