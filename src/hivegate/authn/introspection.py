"""Opaque (non-JWT) access tokens, validated by asking the issuer: RFC 7662 token introspection (sections 2.1-2.2),
plus two non-standard dialects picked by URL: Google's tokeninfo and GitHub's "check a token" API.

- RFC 7662: POST form `token`, `token_type_hint=access_token`, HTTP Basic client credentials (form-encoded per
  RFC 6749 section 2.3.1); `active: false` is an invalid token; `exp`, and `iss`/`aud` when present, are checked.
- Google (`https://oauth2.googleapis.com/tokeninfo`): GET `?access_token=`; `iss` is `https://accounts.google.com`;
  `aud` (the OAuth client id) must equal the configured audience.
- GitHub (`https://api.github.com/applications…`): POST `{"access_token": …}` with Basic client credentials to
  `/applications/{client_id}/token`; `iss`/`aud` are `https://github.com`, `sub` is the numeric user id. GitHub answers
  404 for tokens of other OAuth apps, which binds the token to this client.

Positive answers are cached (bounded) until `exp`, or for `default_ttl` (60 s) when there is none. Answers are capped
at 64 KB. Every failure is `AuthenticationError("invalid_token", …)`; an unreachable endpoint is logged.
"""

from __future__ import annotations

import base64
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus

from hivegate.authn import claims as checks
from hivegate.authn.cache import PrincipalCache
from hivegate.authn.config import GOOGLE_TOKENINFO_URL, OIDCConfig, introspection_kind
from hivegate.authn.ssrf import INTROSPECTION_MAX_BYTES, FetchError, FetchResponse, GuardedHTTPClient
from hivegate.core.principal import Principal
from hivegate.errors import AuthenticationError, ConfigError, UnsafeURLError

__all__ = [
    "GITHUB_ISSUER",
    "GOOGLE_ISSUER",
    "GitHubIntrospector",
    "GoogleTokenInfoIntrospector",
    "Introspector",
    "RFC7662Introspector",
    "basic_auth",
    "build_introspector",
]

logger = logging.getLogger(__name__)

GOOGLE_ISSUER = "https://accounts.google.com"
GITHUB_ISSUER = "https://github.com"
_UNAVAILABLE = "Unable to validate token: the introspection endpoint is unavailable"


def basic_auth(client_id: str, client_secret: str) -> str:
    """An `Authorization: Basic` value for client credentials, each form-encoded first (RFC 6749 section 2.3.1)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _invalid(description: str) -> AuthenticationError:
    return AuthenticationError("invalid_token", description)


class Introspector(ABC):
    """Shared flow of every dialect: cache, ask, check the claims, cache again (a `TokenVerifier`)."""

    def __init__(
        self,
        http: GuardedHTTPClient,
        *,
        issuer: str | None,
        audience: str | None,
        audience_required: bool,
        clock_skew: float = 60.0,
        cache_size: int = 10_000,
        default_ttl: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._issuer = issuer
        self._audience = audience
        self._audience_required = audience_required
        self._skew = clock_skew
        self._default_ttl = default_ttl
        self._clock = clock
        self._cache = PrincipalCache(cache_size, clock=clock)

    def cached(self, token: str) -> Principal | None:
        """The principal of a token found active earlier, while its cache entry lasts; no request is made."""
        return self._cache.get(token)

    async def verify(self, token: str) -> Principal:
        """The principal of an active token; `AuthenticationError("invalid_token", …)` otherwise."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        try:
            claims = await self._introspect(token)
        except (FetchError, UnsafeURLError) as exc:
            logger.warning("token introspection failed: %s", exc)
            raise _invalid(_UNAVAILABLE) from exc
        now = self._clock()
        exp = checks.check_expiry(claims, now, self._skew, required=False)
        checks.check_not_before(claims, now, self._skew)
        if self._issuer is not None:
            checks.check_issuer(claims, self._issuer, required=False)
        if self._audience is not None:
            checks.check_audience(claims, self._audience, required=self._audience_required)
        subject = checks.require_subject(claims)
        issuer = claims.get("iss")
        principal = Principal(
            subject=subject,
            issuer=issuer if isinstance(issuer, str) else (self._issuer or ""),
            kind="opaque",
            claims=claims,
            expires_at=exp,
        )
        self._cache.put(token, principal, exp if exp is not None else now + self._default_ttl)
        return principal

    @abstractmethod
    async def _introspect(self, token: str) -> dict[str, Any]:
        """The token's claims, or `AuthenticationError` when the endpoint says it is not valid."""

    def _json_object(self, resp: FetchResponse, what: str) -> dict[str, Any]:
        body = resp.json()
        if not isinstance(body, dict):
            raise FetchError(f"{what} answer is not a JSON object")
        return body


class RFC7662Introspector(Introspector):
    """RFC 7662 section 2: POST the token to the introspection endpoint, authenticated as the client."""

    def __init__(
        self,
        http: GuardedHTTPClient,
        url: str,
        *,
        client_id: str | None,
        client_secret: str | None,
        issuer: str | None,
        audience: str | None,
        **options: Any,
    ) -> None:
        super().__init__(http, issuer=issuer, audience=audience, audience_required=False, **options)
        self._url = url
        self._headers = {"Accept": "application/json"}
        if client_id:
            self._headers["Authorization"] = basic_auth(client_id, client_secret or "")

    async def _introspect(self, token: str) -> dict[str, Any]:
        resp = await self._http.fetch(
            "POST",
            self._url,
            headers=self._headers,
            data={"token": token, "token_type_hint": "access_token"},
            max_bytes=INTROSPECTION_MAX_BYTES,
        )
        if resp.status != 200:
            raise FetchError(f"introspection endpoint answered HTTP {resp.status}")
        claims = self._json_object(resp, "introspection")
        if claims.get("active") is not True:
            raise _invalid("Token is not active")
        return claims


class GoogleTokenInfoIntrospector(Introspector):
    """Google's tokeninfo endpoint: GET `?access_token=`; the audience is mandatory."""

    def __init__(
        self, http: GuardedHTTPClient, *, audience: str, url: str = GOOGLE_TOKENINFO_URL, **options: Any
    ) -> None:
        super().__init__(http, issuer=GOOGLE_ISSUER, audience=audience, audience_required=True, **options)
        self._url = url

    async def _introspect(self, token: str) -> dict[str, Any]:
        resp = await self._http.fetch(
            "GET", self._url, params={"access_token": token}, max_bytes=INTROSPECTION_MAX_BYTES
        )
        if resp.status == 400:
            raise _invalid("Token is not active")
        if resp.status != 200:
            raise FetchError(f"Google tokeninfo answered HTTP {resp.status}")
        claims = self._json_object(resp, "Google tokeninfo")
        claims["iss"] = GOOGLE_ISSUER
        for name in ("exp", "iat"):
            value = claims.get(name)
            if isinstance(value, str):  # tokeninfo sends NumericDates as strings
                try:
                    claims[name] = int(value)
                except ValueError as exc:
                    raise _invalid(f"Invalid '{name}' claim") from exc
        return claims


class GitHubIntrospector(Introspector):
    """GitHub's "check a token" API for OAuth apps (GitHub.com only)."""

    def __init__(
        self,
        http: GuardedHTTPClient,
        *,
        client_id: str,
        client_secret: str,
        api_base: str = "https://api.github.com",
        **options: Any,
    ) -> None:
        super().__init__(http, issuer=GITHUB_ISSUER, audience=None, audience_required=False, **options)
        self._url = f"{api_base.rstrip('/')}/applications/{quote_plus(client_id)}/token"
        self._headers = {
            "Authorization": basic_auth(client_id, client_secret),
            "Accept": "application/vnd.github+json",
        }

    async def _introspect(self, token: str) -> dict[str, Any]:
        resp = await self._http.fetch(
            "POST", self._url, headers=self._headers, json={"access_token": token}, max_bytes=INTROSPECTION_MAX_BYTES
        )
        if resp.status in (404, 422):
            raise _invalid("Token is not active")
        if resp.status != 200:
            raise FetchError(f"GitHub token check answered HTTP {resp.status}")
        return _github_claims(self._json_object(resp, "GitHub token check"))


def _github_claims(body: dict[str, Any]) -> dict[str, Any]:
    user = body.get("user")
    if not isinstance(user, dict):
        raise _invalid(checks.INVALID_CLAIMS)
    user_id = user.get("id")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise _invalid(checks.INVALID_CLAIMS)
    claims: dict[str, Any] = {"sub": str(user_id), "iss": GITHUB_ISSUER, "aud": GITHUB_ISSUER, "active": True}
    for name, claim in (("login", "login"), ("login", "preferred_username"), ("name", "name"), ("email", "email")):
        if isinstance(user.get(name), str) and user[name]:
            claims[claim] = user[name]
    scopes = body.get("scopes")
    if isinstance(scopes, list):
        claims["scopes"] = [s for s in scopes if isinstance(s, str)]
        claims["scope"] = " ".join(claims["scopes"])
    expires_at = body.get("expires_at")
    if isinstance(expires_at, str):
        try:
            claims["exp"] = int(datetime.fromisoformat(expires_at).timestamp())
        except ValueError as exc:
            raise _invalid("Invalid 'exp' claim") from exc
    return claims


def build_introspector(cfg: OIDCConfig, http: GuardedHTTPClient) -> Introspector:
    """The introspector for `cfg.introspection_url`, its dialect chosen from the URL. Call after `cfg.validate()`."""
    url = cfg.introspection_url
    if not url:
        raise ConfigError("--oidc-introspection-url is not set")
    options: dict[str, Any] = {"clock_skew": cfg.clock_skew, "cache_size": cfg.cache_size}
    kind = introspection_kind(url)
    if kind == "google":
        if not cfg.audience:
            raise ConfigError("--oidc-audience is required for Google tokeninfo validation")
        return GoogleTokenInfoIntrospector(http, audience=cfg.audience, url=url, **options)
    if kind == "github":
        if not (cfg.client_id and cfg.client_secret):
            raise ConfigError("--oidc-client-id and --oidc-client-secret are required for GitHub token validation")
        return GitHubIntrospector(http, client_id=cfg.client_id, client_secret=cfg.client_secret, **options)
    return RFC7662Introspector(
        http,
        url,
        client_id=cfg.client_id,
        client_secret=cfg.client_secret,
        issuer=cfg.issuer,
        audience=cfg.audience,
        **options,
    )
