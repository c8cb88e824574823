"""Authenticators: the raw `Authorization` header (RFC 6750 section 2.1) in, a `Principal` out.

- `BearerAuthenticator`: a JWT (three base64url segments with a JSON header) goes to the JWT verifier; anything else
  to introspection when configured, else it is an invalid token.
- `LocalAuthenticator`: no token; the caller is the OS user running hivegate (for a workstation).
- `AnonymousAuthenticator`: no token; everyone is `anonymous`.

`build_authenticator(cfg)` makes the right one from an `OIDCConfig`.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from hivegate.authn.discovery import OIDCDiscovery
from hivegate.authn.introspection import build_introspector
from hivegate.authn.jwks import JWKSCache
from hivegate.authn.jwt import JWTVerifier, looks_like_jwt
from hivegate.authn.kubernetes import apply_kubernetes_defaults, service_account_check, trusted_private_hosts
from hivegate.authn.oidc_config import OIDCConfig
from hivegate.core.ports import Authenticator, TokenVerifier
from hivegate.core.principal import Principal
from hivegate.errors import AuthenticationError
from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.oauth.bearer import check_b64token, extract_bearer

__all__ = [
    "ANONYMOUS_ISSUER",
    "LOCAL_AUDIENCE",
    "LOCAL_ISSUER",
    "AnonymousAuthenticator",
    "BearerAuthenticator",
    "CachingVerifier",
    "LocalAuthenticator",
    "build_authenticator",
]


LOCAL_ISSUER = "hivegate-local"
ANONYMOUS_ISSUER = "hivegate-anonymous"
LOCAL_AUDIENCE = "hivegate"


class CachingVerifier(TokenVerifier, Protocol):
    """A `TokenVerifier` that can answer for tokens it has already verified without doing the work again.

    `verify(token)` is `cached(token)` or else `verify_uncached(token)`; a caller that has just missed with `cached`
    calls `verify_uncached` so as not to look the token up twice.
    """

    def cached(self, token: str) -> Principal | None: ...

    async def verify_uncached(self, token: str) -> Principal: ...


class _NoTokenAuthenticator:
    """Shared shape of the modes that take no token: one fixed principal, no challenge, nothing to close."""

    requires_token = False
    realm: str | None = None
    scopes: tuple[str, ...] = ()
    authorization_servers: tuple[str, ...] = ()
    keys_ready: Callable[[], Awaitable[str | None]] | None = None

    def __init__(self, principal: Principal) -> None:
        self._principal = principal

    async def authenticate(self, authorization: str | None) -> Principal:
        """The fixed principal; the header, if any, is ignored."""
        return self._principal

    async def aclose(self) -> None:
        """Nothing to close: these modes make no HTTP requests."""


class LocalAuthenticator(_NoTokenAuthenticator):
    """Every caller is the local OS user (`getpass.getuser()`), issuer `hivegate-local`."""

    def __init__(self, user: str | None = None) -> None:
        name = user or getpass.getuser()
        claims = {"sub": name, "iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "email": f"{name}@localhost", "name": name}
        super().__init__(Principal(subject=name, issuer=LOCAL_ISSUER, kind="local", claims=claims))


class AnonymousAuthenticator(_NoTokenAuthenticator):
    """Every caller is `anonymous`, issuer `hivegate-anonymous`."""

    def __init__(self) -> None:
        claims = {"sub": "anonymous", "iss": ANONYMOUS_ISSUER, "aud": LOCAL_AUDIENCE}
        super().__init__(Principal(subject="anonymous", issuer=ANONYMOUS_ISSUER, kind="anonymous", claims=claims))


class BearerAuthenticator:
    """Bearer tokens: JWTs verified locally, opaque tokens introspected. Owns the HTTP client it is given.

    The hot path is a token seen before: header split, then one cache lookup per verifier. Only a miss pays for the
    `b64token` syntax check, the JWT sniffing and the verification (which does not look in the cache again).
    """

    requires_token = True

    def __init__(
        self,
        *,
        jwt_verifier: CachingVerifier | None,
        introspector: CachingVerifier | None,
        realm: str | None,
        scopes: Sequence[str] = (),
        authorization_servers: Sequence[str] = (),
        http: GuardedHTTPClient | None = None,
        revoked: Callable[[Mapping[str, Any]], Awaitable[bool]] | None = None,
        keys_ready: Callable[[], Awaitable[str | None]] | None = None,
        restrict: Callable[[Principal], None] | None = None,
    ) -> None:
        """`restrict`: a check every verified principal must pass (raising `AuthenticationError`), e.g. one
        Kubernetes service account (`kubernetes.service_account_check`)."""
        # the `keys` readiness check (the JWT keys are loaded); none when opaque tokens are introspected as well:
        # tokens can then be validated while the JWKS is unavailable, and some issuers (GitHub) publish none
        self.keys_ready = keys_ready if introspector is None else None
        self._jwt = jwt_verifier
        self._revoked = revoked  # asked per request, after the signature and claims checks (the embedded AS)
        self._restrict = restrict
        self._introspector = introspector
        self._verifiers = tuple(v for v in (jwt_verifier, introspector) if v is not None)
        self._http = http
        self.realm = realm
        self.scopes = tuple(scopes)
        self.authorization_servers = tuple(authorization_servers)

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind `Authorization: Bearer <token>`; `AuthenticationError` when there is none."""
        principal = await self._verified(extract_bearer(authorization, check_syntax=False))
        if self._restrict is not None:
            self._restrict(principal)
        if self._revoked is not None and await self._revoked(principal.claims):
            raise AuthenticationError("invalid_token", "Token has been revoked")
        return principal

    async def _verified(self, token: str) -> Principal:
        for verifier in self._verifiers:
            principal = verifier.cached(token)
            if principal is not None:
                return principal
        check_b64token(token)
        if self._jwt is not None and looks_like_jwt(token):
            return await self._jwt.verify_uncached(token)
        if self._introspector is not None:
            return await self._introspector.verify_uncached(token)
        raise AuthenticationError("invalid_token", "Token is not a valid JWT")

    async def aclose(self) -> None:
        """Close the HTTP session used for discovery, JWKS and introspection."""
        if self._http is not None:
            await self._http.aclose()


def introspects(cfg: OIDCConfig) -> bool:
    """Whether opaque tokens are introspected: at `--oidc-introspection-url`, or with a client id and secret at the
    issuer's discovered `introspection_endpoint`."""
    return bool(cfg.introspection_url or (cfg.client_id and cfg.client_secret))


def build_authenticator(cfg: OIDCConfig) -> Authenticator:
    """The authenticator for `cfg`, validated first (`ConfigError` on bad settings). Makes no network request.

    In OIDC mode: the client secret may come from `HIVEGATE_OIDC_CLIENT_SECRET`; the in-cluster Kubernetes issuer
    gets its defaults; JWTs are checked against `--oidc-jwks-url` or, when unset, the `jwks_uri` found by OIDC
    discovery (on first use); opaque tokens go to `--oidc-introspection-url` when set, or with a client id and secret
    to the `introspection_endpoint` discovery finds.
    """
    if cfg.mode == "local":
        return LocalAuthenticator()
    if cfg.mode == "anonymous":
        return AnonymousAuthenticator()
    cfg = apply_kubernetes_defaults(cfg.with_env_secret())
    cfg.validate()
    assert cfg.issuer is not None  # validate() requires it
    http = GuardedHTTPClient(
        allow_http=cfg.insecure_allow_http,
        allow_private=cfg.jwks_allow_private_ip,
        private_hosts=trusted_private_hosts(cfg),
        ca_bundle=cfg.ca_bundle,
    )
    jwt_verifier: JWTVerifier | None = None
    jwks: JWKSCache | None = None
    discovery = OIDCDiscovery(http, cfg.issuer)
    if cfg.audience:
        jwks_url = cfg.jwks_url or discovery.jwks_uri
        jwks = JWKSCache(http, jwks_url, auth_token_file=cfg.jwks_auth_token_file)
        jwt_verifier = JWTVerifier(
            jwks, issuer=cfg.issuer, audience=cfg.audience, clock_skew=cfg.clock_skew, cache_size=cfg.cache_size
        )
    introspector = build_introspector(cfg, http, discovery.introspection_endpoint) if introspects(cfg) else None
    return BearerAuthenticator(
        jwt_verifier=jwt_verifier,
        introspector=introspector,
        realm=cfg.issuer,
        scopes=cfg.scopes,
        authorization_servers=(cfg.issuer,),
        http=http,
        keys_ready=jwks.ready if jwks is not None else None,
        restrict=service_account_check(cfg.service_account) if cfg.service_account else None,
    )
