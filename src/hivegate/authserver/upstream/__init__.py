"""Upstream identity providers of the embedded authorization server: `oidc` (discovery, ID token, userinfo) and
`oauth2` (explicit endpoints, userinfo with a field mapping). `build_upstream` makes the right one for a config;
`upstream_http_client` makes the guarded HTTP client they share (the caller closes it)."""

from __future__ import annotations

from hivegate.authserver.settings import UpstreamConfig
from hivegate.authserver.upstream.base import UpstreamError, UpstreamIdentity, UpstreamProvider, UpstreamTokens
from hivegate.authserver.upstream.exchange import upstream_http_client
from hivegate.authserver.upstream.idtoken import IDTokenValidator
from hivegate.authserver.upstream.oauth2 import OAuth2Upstream
from hivegate.authserver.upstream.oidc import OIDCUpstream
from hivegate.httpclient.guard import GuardedHTTPClient

__all__ = [
    "IDTokenValidator",
    "OAuth2Upstream",
    "OIDCUpstream",
    "UpstreamError",
    "UpstreamIdentity",
    "UpstreamProvider",
    "UpstreamTokens",
    "build_upstream",
    "upstream_http_client",
]


def build_upstream(config: UpstreamConfig, http: GuardedHTTPClient, *, clock_skew: float = 60.0) -> UpstreamProvider:
    """The provider for one configured upstream (`type: oidc` or `type: oauth2`); `clock_skew`: seconds of leeway
    for the `exp` and `iat` of its ID tokens."""
    if config.type == "oidc":
        return OIDCUpstream(config, http, clock_skew=clock_skew)
    return OAuth2Upstream(config, http)
