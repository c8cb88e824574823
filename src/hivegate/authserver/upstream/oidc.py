"""An OpenID Connect upstream (OpenID Connect Core 1.0 section 3.1, the authorization code flow, with PKCE S256).

Endpoints come from discovery (OpenID Connect Discovery 1.0), fetched on first use. The token endpoint is called
with HTTP Basic client credentials, or with them in the form when discovery lists `client_secret_post` but not
`client_secret_basic`; a client without a secret sends only its `client_id`. The ID token is validated (see
`idtoken`); userinfo, when there is an endpoint (`userInfoOverride` replaces the discovered one), must name the same
`sub` (section 5.3.2) and its claims are merged over the ID token's, so claims found in only one of them (groups in
the ID token, say) are kept. The identity's subject is the ID token's `sub`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hivegate.authn.discovery import OIDCDiscovery
from hivegate.authn.jwks import JWKSCache
from hivegate.authn.jwt import verify_signature
from hivegate.authserver.settings import FieldMapping, UpstreamConfig, UserInfoConfig
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
from hivegate.authserver.upstream.idtoken import IDTokenValidator
from hivegate.errors import ConfigError, FetchError, IssuerMismatchError, UnsafeURLError
from hivegate.httpclient.guard import GuardedHTTPClient

__all__ = ["OIDCUpstream"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Endpoints:
    authorization: str
    token: str
    userinfo: str | None
    auth_method: AuthMethod


class OIDCUpstream:
    """An `UpstreamProvider` for an OpenID provider. `http` belongs to the caller (`aclose` leaves it open);
    `discovery` may be given to share or tune the metadata fetch."""

    def __init__(
        self,
        config: UpstreamConfig,
        http: GuardedHTTPClient,
        *,
        discovery: OIDCDiscovery | None = None,
        clock: Callable[[], float] = time.time,
        clock_skew: float = 60.0,
    ) -> None:
        if config.type != "oidc" or not config.issuer_url:
            raise ConfigError(f"upstream {config.name!r}: an oidc upstream needs an issuer URL")
        self._config = config
        self._http = http
        self._clock = clock
        self._discovery = discovery if discovery is not None else OIDCDiscovery(http, config.issuer_url)
        self._endpoints: _Endpoints | None = None
        scopes = config.scopes if "openid" in config.scopes else ("openid", *config.scopes)
        self._scope = " ".join(scopes)
        jwks = JWKSCache(http, self._jwks_uri)
        self._jwks = jwks
        self._id_tokens = IDTokenValidator(
            jwks, issuer=config.issuer_url, client_id=config.client_id, clock_skew=clock_skew, clock=clock
        )

    @property
    def name(self) -> str:
        return self._config.name

    async def authorization_url(self, *, state: str, code_challenge: str, nonce: str, redirect_uri: str) -> str:
        """The authorization request (section 3.1.2.1) with PKCE S256 (RFC 7636 section 4.3) and the nonce."""
        endpoints = await self._metadata()
        params = {
            **self._config.additional_authorization_params,
            "response_type": "code",
            "client_id": self._config.client_id,
            "redirect_uri": redirect_uri,
            "scope": self._scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return with_query(endpoints.authorization, params)

    async def exchange_code(
        self, code: str, *, code_verifier: str, nonce: str, redirect_uri: str
    ) -> tuple[UpstreamTokens, UpstreamIdentity]:
        """Redeem the code (section 3.1.3), validate the ID token against `nonce`, and read userinfo."""
        endpoints = await self._metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        tokens = await request_tokens(self._http, endpoints.token, form, self._auth(endpoints), clock=self._clock)
        if tokens.id_token is None:
            raise UpstreamError("server_error", "the upstream answered without an ID token (is 'openid' granted?)")
        id_claims = await self._id_tokens.validate(tokens.id_token, nonce=nonce)
        claims = dict(id_claims)
        info = self._userinfo_config(endpoints)
        if info is not None:
            claims.update(await self._userinfo(info, tokens.access_token, id_claims["sub"]))
        return tokens, self._identity(id_claims["sub"], claims)

    async def refresh(self, refresh_token: str) -> tuple[UpstreamTokens, UpstreamIdentity | None]:
        """New tokens (section 12), and who the refreshed ID token says the user is (its claims merged with
        userinfo's, as at login; None without a new ID token, or when userinfo fails: the login's claims stand). The
        ID token is validated without a nonce; the old refresh token is kept when the upstream sends no new one."""
        endpoints = await self._metadata()
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        tokens = await request_tokens(self._http, endpoints.token, form, self._auth(endpoints), clock=self._clock)
        if tokens.refresh_token is None:
            tokens = replace(tokens, refresh_token=refresh_token)
        if tokens.id_token is None:
            return tokens, None
        id_claims = await self._id_tokens.validate(tokens.id_token, nonce=None)
        claims = dict(id_claims)
        info = self._userinfo_config(endpoints)
        if info is not None:
            try:
                claims.update(await self._userinfo(info, tokens.access_token, id_claims["sub"]))
            except UpstreamError as exc:  # the new tokens are good: keep them, with the claims the login had
                logger.warning("upstream %r: userinfo failed after a refresh (%s); claims kept", self.name, exc.error)
                return tokens, None
        return tokens, self._identity(id_claims["sub"], claims)

    @property
    def issuer(self) -> str:
        return self._config.issuer_url or ""

    @property
    def client_id(self) -> str:
        """This server's client id at the upstream."""
        return self._config.client_id

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        """`tokenExchange.acceptedAudiences`: other audiences an exchanged access token may name."""
        return self._config.accepted_audiences

    async def signed_claims(self, token: str) -> dict[str, Any]:
        """The claims of a JWT this upstream signed (its JWKS, an asymmetric algorithm); nothing else is checked.
        `AuthenticationError` when the signature does not verify."""
        return await verify_signature(token, self._jwks)

    def check_id_token(self, claims: dict[str, Any]) -> None:
        """`UpstreamError` unless verified `claims` are those of an ID token issued to our client (no nonce)."""
        self._id_tokens.check(claims, nonce=None)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""

    # -- helpers --------------------------------------------------------------------------------------------------

    def _identity(self, subject: str, claims: dict[str, Any]) -> UpstreamIdentity:
        mapping = self._config.user_info.field_mapping if self._config.user_info else FieldMapping()
        _, name, email = identity_fields(claims, mapping)
        return UpstreamIdentity(subject=subject, name=name, email=email, claims=claims)

    def _auth(self, endpoints: _Endpoints) -> ClientAuth:
        return ClientAuth(self._config.client_id, self._config.client_secret, endpoints.auth_method)

    def _userinfo_config(self, endpoints: _Endpoints) -> UserInfoConfig | None:
        if self._config.user_info is not None:
            return self._config.user_info
        return UserInfoConfig(endpoint_url=endpoints.userinfo) if endpoints.userinfo else None

    async def _userinfo(self, info: UserInfoConfig, access_token: str, subject: str) -> dict[str, Any]:
        try:
            userinfo = await fetch_userinfo(self._http, info, access_token)
        except UpstreamError as exc:
            if self._config.user_info is not None or exc.error == "temporarily_unavailable":
                raise
            # a discovered endpoint may refuse an access token minted for another resource (RFC 8707): the ID token
            # already says who the user is, so the login goes on with its claims
            logger.warning("upstream %r: userinfo not available (%s); using the ID token's claims", self.name, exc)
            return {}
        sub = userinfo.get("sub")
        if sub is None and self._config.user_info is not None:
            return userinfo  # a non-standard endpoint named by userInfoOverride may not say `sub`
        if sub != subject:
            logger.warning("upstream %r: userinfo names another subject than the ID token", self.name)
            raise UpstreamError("server_error", "the upstream's userinfo names another user than its ID token")
        return userinfo

    async def _jwks_uri(self) -> str:
        return check_target(str((await self._discovered())["jwks_uri"]), "jwks_uri")

    async def _metadata(self) -> _Endpoints:
        if self._endpoints is None:
            self._endpoints = self._endpoints_of(await self._discovered())
        return self._endpoints

    async def _discovered(self) -> Mapping[str, Any]:
        try:
            return await self._discovery.metadata()
        except IssuerMismatchError as exc:
            logger.warning("upstream %r: %s", self.name, exc)
            raise UpstreamError("server_error", "the upstream's discovery document names another issuer") from exc
        except UnsafeURLError as exc:
            logger.warning("upstream %r: %s", self.name, exc)
            raise UpstreamError("server_error", "the upstream's discovery URL is not allowed") from exc
        except FetchError as exc:
            raise UpstreamError("temporarily_unavailable", "the upstream's discovery document is unavailable") from exc

    def _endpoints_of(self, metadata: Mapping[str, Any]) -> _Endpoints:
        urls = {}
        for key in ("authorization_endpoint", "token_endpoint"):
            value = metadata.get(key)
            if not isinstance(value, str) or not value:
                raise UpstreamError("server_error", f"the upstream's discovery document has no {key}")
            urls[key] = check_target(value, key)
        userinfo = metadata.get("userinfo_endpoint")
        methods = metadata.get("token_endpoint_auth_methods_supported")
        method: AuthMethod = "client_secret_basic"
        if self._config.client_secret is None:
            method = "none"
        elif isinstance(methods, list) and "client_secret_basic" not in methods and "client_secret_post" in methods:
            method = "client_secret_post"
        return _Endpoints(
            authorization=urls["authorization_endpoint"],
            token=urls["token_endpoint"],
            userinfo=userinfo if isinstance(userinfo, str) and userinfo else None,
            auth_method=method,
        )
