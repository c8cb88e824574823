"""A plain OAuth 2.0 upstream (RFC 6749 section 4.1, with PKCE S256 per RFC 7636), GitHub style: no ID token, so
who logged in comes from a configured userinfo endpoint.

The endpoints are configured, not discovered. The token endpoint gets the client credentials in the form
(`client_secret_post`, which GitHub and most OAuth-only providers accept; only `client_id` for a client without a
secret) and `Accept: application/json` (GitHub answers form-encoded otherwise; both are read). PKCE is always sent:
a provider that does not know it ignores the parameters. Userinfo is called with the configured method and extra
headers; the field mapping picks the subject (required; a number such as GitHub's `id` becomes text), the name and
the email: for each, the first field with a non-empty value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from hivegate.authserver.settings import UpstreamConfig, UserInfoConfig
from hivegate.authserver.upstream.base import UpstreamError, UpstreamIdentity, UpstreamTokens
from hivegate.authserver.upstream.exchange import (
    AuthMethod,
    ClientAuth,
    check_target,
    fetch_userinfo,
    identity_fields,
    request_tokens,
    with_query,
)
from hivegate.errors import ConfigError
from hivegate.httpclient.guard import GuardedHTTPClient

__all__ = ["OAuth2Upstream"]


class OAuth2Upstream:
    """An `UpstreamProvider` for an OAuth 2.0 provider with explicit endpoints. `http` belongs to the caller."""

    def __init__(
        self, config: UpstreamConfig, http: GuardedHTTPClient, *, clock: Callable[[], float] = time.time
    ) -> None:
        if (
            config.type != "oauth2"
            or not config.authorization_endpoint
            or not config.token_endpoint
            or config.user_info is None
        ):
            raise ConfigError(
                f"upstream {config.name!r}: an oauth2 upstream needs authorization and token endpoints and userInfo"
            )
        self._config = config
        self._http = http
        self._clock = clock
        self._authorization_endpoint = config.authorization_endpoint
        self._token_endpoint = config.token_endpoint
        self._user_info: UserInfoConfig = config.user_info
        method: AuthMethod = "client_secret_post" if config.client_secret is not None else "none"
        self._client = ClientAuth(config.client_id, config.client_secret, method)

    @property
    def name(self) -> str:
        return self._config.name

    async def authorization_url(self, *, state: str, code_challenge: str, nonce: str, redirect_uri: str) -> str:
        """The authorization request (RFC 6749 section 4.1.1) with PKCE S256; `nonce` is OIDC's and is not sent."""
        params = {
            **self._config.additional_authorization_params,
            "response_type": "code",
            "client_id": self._config.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if self._config.scopes:
            params["scope"] = " ".join(self._config.scopes)
        return with_query(check_target(self._authorization_endpoint, "authorization endpoint"), params)

    async def exchange_code(
        self, code: str, *, code_verifier: str, nonce: str, redirect_uri: str
    ) -> tuple[UpstreamTokens, UpstreamIdentity]:
        """Redeem the code (RFC 6749 section 4.1.3), then ask userinfo who logged in."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        tokens = await request_tokens(self._http, self._token_endpoint, form, self._client, clock=self._clock)
        claims = await fetch_userinfo(self._http, self._user_info, tokens.access_token)
        subject, name, email = identity_fields(claims, self._user_info.field_mapping)
        if subject is None:
            fields = ", ".join(self._user_info.field_mapping.subject_fields)
            raise UpstreamError("access_denied", f"the upstream's user info names no user (looked for: {fields})")
        return tokens, UpstreamIdentity(subject=subject, name=name, email=email, claims=claims)

    async def refresh(self, refresh_token: str) -> tuple[UpstreamTokens, UpstreamIdentity | None]:
        """New tokens (RFC 6749 section 6); the old refresh token is kept when no new one is sent. No identity: there
        is no ID token, so the login's claims stand."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        tokens = await request_tokens(self._http, self._token_endpoint, form, self._client, clock=self._clock)
        return (tokens if tokens.refresh_token is not None else replace(tokens, refresh_token=refresh_token)), None

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""
