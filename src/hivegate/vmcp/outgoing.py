"""`outgoingAuth` of a virtual MCP server: the `Credentials` each backend gets (`hivegate.outgoing`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hivegate.errors import ConfigError
from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.httpclient.loopback import uses_http
from hivegate.outgoing.credentials import (
    ID_TOKEN_TYPE,
    Credentials,
    ExchangedToken,
    NoCredentials,
    StaticHeader,
    SubjectSource,
    UpstreamToken,
    caller_token,
    upstream_subject,
)
from hivegate.vmcp.spec import (
    BackendConfig,
    HeaderInjection,
    TokenExchange,
    Unauthenticated,
    UpstreamInject,
    VMCPConfig,
)

if TYPE_CHECKING:
    from hivegate.authserver.build import EmbeddedAuthServer

__all__ = ["backend_credentials", "exchanged_token", "sts_http_client"]


def sts_http_client(cfg: VMCPConfig) -> GuardedHTTPClient:
    """The client for token exchanges: the STS URLs are the administrator's (private addresses allowed); http only
    when a configured STS uses it (the config accepts http on loopback hosts only)."""
    urls = [s.token_url for s in (cfg.outgoing_auth.default, *cfg.outgoing_auth.backends.values())
            if isinstance(s, TokenExchange)]  # fmt: skip
    return GuardedHTTPClient(allow_http=uses_http(urls), allow_private=True, timeout=10.0)


def backend_credentials(
    cfg: VMCPConfig, backend: BackendConfig, embedded: EmbeddedAuthServer | None, http: GuardedHTTPClient
) -> Credentials:
    """The credential of `backend` (`ConfigError`, naming the backend, when it cannot have one)."""
    strategy = cfg.outgoing_auth.for_backend(backend.name)
    where = f"outgoingAuth: backend {backend.name!r}"
    if isinstance(strategy, Unauthenticated):
        return NoCredentials()
    if backend.kind == "stdio" and (backend.own_auth is None or backend.own_auth.oidc is None):
        # with an oidcConfig of its own the credential is for that proxy's checks (`ownproxy`), and goes no further
        raise ConfigError(f"{where} is a stdio command: {strategy.TYPE} needs an HTTP backend")
    if isinstance(strategy, HeaderInjection):
        return StaticHeader(strategy.header_name, strategy.header_value)
    if isinstance(strategy, UpstreamInject):
        if embedded is None:
            raise ConfigError(f"{where}: upstreamInject needs authServerConfig (the embedded authorization server)")
        _check_provider(embedded, strategy.provider_name, where)
        return UpstreamToken(embedded.server.upstream_tokens, strategy.provider_name)
    assert isinstance(strategy, TokenExchange)
    return exchanged_token(strategy, embedded, http, where)


def exchanged_token(
    strategy: TokenExchange, embedded: EmbeddedAuthServer | None, http: GuardedHTTPClient, where: str
) -> ExchangedToken:
    """The `tokenExchange` credential: with an embedded authorization server the subject is the caller's token from
    `subjectProviderName` (default the first upstream), otherwise the caller's validated incoming token."""
    subject: SubjectSource
    if embedded is not None:
        provider = strategy.subject_provider_name or embedded.server.upstream_names[0]
        _check_provider(embedded, provider, where)
        subject = upstream_subject(
            embedded.server.upstream_tokens, provider, id_token=strategy.subject_token_type == ID_TOKEN_TYPE
        )
    else:
        subject = caller_token()
    return ExchangedToken(
        token_url=strategy.token_url,
        http=http,
        subject=subject,
        client_id=strategy.client_id,
        client_secret=strategy.client_secret,
        audience=strategy.audience,
        scopes=strategy.scopes,
        subject_token_type=strategy.subject_token_type,
        header_name=strategy.external_token_header_name,
    )


def _check_provider(embedded: EmbeddedAuthServer, provider: str, where: str) -> None:
    if provider not in embedded.server.upstream_names:
        known = ", ".join(embedded.server.upstream_names)
        raise ConfigError(f"{where}: upstream provider {provider!r} is not configured (configured: {known})")
