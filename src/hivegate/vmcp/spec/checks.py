"""The cross-reference checks of a vMCP config, run once every section is parsed.

Every name a section uses must exist: outgoing-auth, aggregation and timeout entries must name backends, an
`upstreamInject` (or a token exchange's `subjectProviderName`) must name an upstream of the embedded authorization
server, a token exchange without one needs `incomingAuth.type: oidc`, and an embedded authorization server needs
`incomingAuth.type: oidc` with its issuer. Backend names must be unique and their tool prefixes must not begin one
another. A backend with an `oidcConfig` of its own (an `MCPServer`'s, `ServerAuth`) must get from the vMCP a
bearer token its proxy can verify (`check_own_auth`). The manifests reader runs the same checks, with the paths
where each section was written.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from hivegate.authserver.settings import AuthServerConfig
from hivegate.errors import ConfigError
from hivegate.vmcp.spec.model import (
    BackendAuthStrategy,
    BackendConfig,
    HeaderInjection,
    ServerAuth,
    TokenExchange,
    UpstreamInject,
    VMCPConfig,
)

__all__ = ["BEARER_STRATEGIES", "check_own_auth", "check_prefixes", "check_references", "check_strategy",
           "check_unique_backends", "sends_bearer", "verified_by_vmcp"]  # fmt: skip

BEARER_STRATEGIES = (
    "tokenExchange (without externalTokenHeaderName), bearerToken, headerInjection of an Authorization: Bearer "
    "header, or embeddedAuthServer/upstreamInject"
)


def check_unique_backends(backends: Sequence[BackendConfig], where: str) -> None:
    seen: set[str] = set()
    for i, backend in enumerate(backends):
        if backend.name in seen:
            raise ConfigError(f"{where}[{i}].name: duplicate backend name {backend.name!r}")
        seen.add(backend.name)


def check_references(cfg: VMCPConfig, where: str = "", *, paths: Mapping[str, str] | None = None) -> None:
    """Every name a section uses must exist. `paths` maps a section key to where it was written (manifests)."""

    def at(key: str) -> str:
        if paths and key in paths:
            return paths[key]
        return f"{where}.{key}" if where else key

    names = [b.name for b in cfg.backends]
    known = set(names)
    for backend in cfg.outgoing_auth.backends:
        if backend not in known:
            raise ConfigError(f"{at('outgoingAuth')}.backends.{backend}: no backend named {backend!r} ({_list(names)})")
    strategies = [(f"{at('outgoingAuth')}.backends.{b}", s) for b, s in cfg.outgoing_auth.backends.items()]
    if cfg.outgoing_auth.default is not None:
        strategies.insert(0, (f"{at('outgoingAuth')}.default", cfg.outgoing_auth.default))
    for path, strategy in strategies:
        check_strategy(strategy, cfg.auth_server, path)
        _check_subject(strategy, cfg, path)
    agg = at("aggregation")
    check_prefixes(names, cfg.aggregation.prefix_format, f"{agg}.conflictResolutionConfig.prefixFormat")
    for i, name in enumerate(cfg.aggregation.priority_order):
        if name not in known:
            raise ConfigError(f"{agg}.conflictResolutionConfig.priorityOrder[{i}]: no backend named {name!r}")
    for i, tools in enumerate(cfg.aggregation.tools):
        if tools.workload not in known:
            raise ConfigError(f"{agg}.tools[{i}].workload: no backend named {tools.workload!r} ({_list(names)})")
    for name in cfg.operational.per_workload_timeouts:
        if name not in known:
            raise ConfigError(f"{at('operational')}.timeouts.perWorkload.{name}: no backend named {name!r}")
    incoming = at("incomingAuth")
    if cfg.incoming_auth.primary_upstream_provider is not None:
        _check_provider(
            cfg.incoming_auth.primary_upstream_provider, cfg.auth_server, f"{incoming}.authz.primaryUpstreamProvider"
        )
    server = cfg.auth_server
    if server is not None:
        if cfg.incoming_auth.type != "oidc":
            raise ConfigError(
                f"{incoming}.type: must be oidc with authServerConfig (clients bring the tokens it issues)"
            )
        oidc = cfg.incoming_auth.oidc
        if oidc.issuer != server.issuer:
            raise ConfigError(
                f"{incoming}: the OIDC issuer {oidc.issuer!r} must be the authorization server's issuer "
                f"{server.issuer!r}"
            )
        if server.allowed_audiences and oidc.audience not in server.allowed_audiences:
            raise ConfigError(
                f"{incoming}: the audience {oidc.audience!r} is not in the authorization server's allowedAudiences"
            )
    check_own_auth(cfg, at("outgoingAuth"))


def sends_bearer(strategy: BackendAuthStrategy) -> bool:
    """Whether `strategy` sends an `Authorization: Bearer` token (one a proxy's OIDC check can see)."""
    if isinstance(strategy, TokenExchange):
        return not strategy.external_token_header_name  # that header carries the bare token, not `Bearer <token>`
    if isinstance(strategy, HeaderInjection):
        value = strategy.header_value.split(" ", 1)
        return strategy.header_name.lower() == "authorization" and len(value) == 2 and value[0].lower() == "bearer"
    return isinstance(strategy, UpstreamInject)


def verified_by_vmcp(own: ServerAuth, auth_server: AuthServerConfig | None) -> bool:
    """Whether the server's `oidcConfig` names the vMCP's embedded authorization server (the seeds' "embedded
    authorization server" `MCPServer`, whose server the vMCP runs): the tokens it checks are then the callers' own,
    which the vMCP has verified; the server gets the upstream's token (`upstreamInject`)."""
    return own.oidc is not None and auth_server is not None and own.oidc.issuer == auth_server.issuer


def check_own_auth(cfg: VMCPConfig, where: str = "outgoingAuth") -> None:
    """A backend whose own proxy verifies tokens (`ServerAuth.oidc`) needs a credential from the vMCP that carries
    one, and an audience to check (unless its tokens are the vMCP's own: `verified_by_vmcp`); otherwise every call to
    it would be refused, or, as before this check, let through unverified."""
    for backend in cfg.backends:
        own = backend.own_auth
        if own is None or own.oidc is None or own.oidc.mode != "oidc" or verified_by_vmcp(own, cfg.auth_server):
            continue
        if not own.oidc.audience:
            raise ConfigError(
                f"{own.where}.oidcConfig: audience required (tokens must be checked to be issued for this server), "
                "unless its issuer is the vMCP's embedded authorization server"
            )
        strategy = cfg.outgoing_auth.for_backend(backend.name)
        if sends_bearer(strategy):
            continue
        raise ConfigError(
            f"{own.where or backend.name}: backend {backend.name!r} has its own oidcConfig, so the vMCP must send it "
            f"a bearer token that config accepts, and its outgoing auth ({strategy.TYPE}) sends none; give it "
            f"{BEARER_STRATEGIES} (spec.externalAuthConfigRef with outgoingAuth.source discovered, or "
            f"{where}.backends.{backend.name})"
        )


def check_prefixes(names: Sequence[str], prefix_format: str, where: str) -> None:
    """No backend's prefix may begin another's: with `{workload}-`, backend `github` advertising
    `enterprise-create_issue` would take the name of backend `github-enterprise`'s `create_issue`."""
    prefixes = sorted((prefix_format.replace("{workload}", name), name) for name in names)
    for (shorter, a), (longer, b) in itertools.pairwise(prefixes):
        if longer.startswith(shorter):
            raise ConfigError(
                f"{where}: the prefix of backend {a!r} ({shorter!r}) begins the prefix of backend {b!r} "
                f"({longer!r}), so a tool of one could be advertised under a name of the other; rename a backend "
                "or change prefixFormat"
            )


def check_strategy(strategy: BackendAuthStrategy, auth_server: AuthServerConfig | None, where: str) -> None:
    """An upstream provider a strategy names must be one of the embedded authorization server's upstreams."""
    if isinstance(strategy, UpstreamInject):
        _check_provider(strategy.provider_name, auth_server, f"{where}.upstreamInject.providerName")
    elif isinstance(strategy, TokenExchange) and strategy.subject_provider_name is not None:
        _check_provider(strategy.subject_provider_name, auth_server, f"{where}.tokenExchange.subjectProviderName")


def _check_subject(strategy: BackendAuthStrategy, cfg: VMCPConfig, where: str) -> None:
    """A token exchange without an embedded authorization server exchanges the caller's incoming token: there must
    be one (`anonymous` and `local` callers present none, so every call would fail)."""
    if not isinstance(strategy, TokenExchange) or cfg.auth_server is not None or cfg.incoming_auth.type == "oidc":
        return
    raise ConfigError(
        f"{where}.tokenExchange: the subject is the caller's incoming token, and incomingAuth.type "
        f"{cfg.incoming_auth.type} has none; use incomingAuth.type oidc, or authServerConfig (with "
        "subjectProviderName) to exchange the caller's upstream token"
    )


def _check_provider(name: str, auth_server: AuthServerConfig | None, where: str) -> None:
    if auth_server is None:
        raise ConfigError(f"{where}: names upstream provider {name!r}, but there is no embedded authorization server")
    providers = [u.name for u in auth_server.upstreams]
    if name not in providers:
        raise ConfigError(f"{where}: no upstream provider named {name!r} ({_list(providers)})")


def _list(names: Sequence[str]) -> str:
    return "known: " + ", ".join(names) if names else "none configured"
