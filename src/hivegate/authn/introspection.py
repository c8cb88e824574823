"""Opaque (non-JWT) access tokens, validated by asking the issuer: RFC 7662 token introspection (sections 2.1-2.2),
plus two non-standard dialects picked by URL: Google's tokeninfo and GitHub's "check a token" API.

- RFC 7662: POST form `token`, `token_type_hint=access_token`, HTTP Basic client credentials (form-encoded per
  RFC 6749 section 2.3.1), to `--oidc-introspection-url` or, with a client id and secret and no URL, to the
  `introspection_endpoint` of the issuer's discovery document (an issuer that publishes none: opaque tokens are
  refused, saying so); `active: false` is an invalid token; `exp` and `iss` are checked when present; when an
  audience is configured, `aud` must contain it (a token the issuer minted for another resource is refused).
- Google (`https://oauth2.googleapis.com/tokeninfo`): GET `?access_token=`; `iss` is `https://accounts.google.com`;
  `aud` (the OAuth client id) must equal the configured audience.
- GitHub (`https://api.github.com/applications…`): POST `{"access_token": …}` with Basic client credentials to
  `/applications/{client_id}/token`; `iss`/`aud` are `https://github.com`, `sub` is the numeric user id. GitHub answers
  404 for tokens of other OAuth apps, which binds the token to this client.

Positive answers are cached (bounded) for at most `cache_ttl` (60 s) and never past `exp`, so a token revoked at the
issuer stops working within `cache_ttl`. Tokens the issuer refused (inactive, expired, wrong issuer or audience…) are
remembered for `negative_ttl` (30 s) by their SHA-256, never the token itself; a token not valid yet (`nbf`) and an
unreachable endpoint are not remembered. Concurrent checks of one token share one request, and at most
`max_concurrency` (16) requests are in flight at once, so a flood of junk tokens leaves the rest of the shared
connection pool (32) to discovery and JWKS. Answers are capped at 64 KB. Every failure is
`AuthenticationError("invalid_token", …)`; an unreachable endpoint is logged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus

from hivegate.authn import claims as checks
from hivegate.authn.cache import DeadlineCache, PrincipalCache
from hivegate.authn.oidc_config import GOOGLE_TOKENINFO_URL, OIDCConfig, introspection_kind
from hivegate.core.principal import Principal
from hivegate.core.singleflight import SingleFlight
from hivegate.errors import AuthenticationError, ConfigError, FetchError, UnsafeURLError, invalid_token
from hivegate.httpclient.guard import INTROSPECTION_MAX_BYTES, FetchResponse, GuardedHTTPClient

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


class Introspector(ABC):
    """Shared flow of every dialect: caches, one request per token at a time, claim checks (a `TokenVerifier`).

    `audience`, when set, must be in the answer's `aud`; `issuer`, when set, must equal its `iss` if it has one.
    """

    def __init__(
        self,
        http: GuardedHTTPClient,
        *,
        issuer: str | None,
        audience: str | None,
        clock_skew: float = 60.0,
        cache_size: int = 10_000,
        cache_ttl: float = 60.0,
        negative_ttl: float = 30.0,
        max_concurrency: int = 16,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._issuer = issuer
        self._audience = audience
        self._skew = clock_skew
        self._cache_ttl = cache_ttl
        self._negative_ttl = negative_ttl
        self._clock = clock
        self._cache = PrincipalCache(cache_size, clock=clock)
        self._refused: DeadlineCache[bytes, str] = DeadlineCache(cache_size, clock=clock)  # digest -> description
        self._checks: SingleFlight[bytes, Principal | str] = SingleFlight()
        self._slots = asyncio.Semaphore(max_concurrency)

    def cached(self, token: str) -> Principal | None:
        """The principal of a token found active earlier, while its cache entry lasts; no request is made."""
        return self._cache.get(token)

    async def verify(self, token: str) -> Principal:
        """The principal of an active token; `AuthenticationError("invalid_token", …)` otherwise."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        return await self.verify_uncached(token)

    async def verify_uncached(self, token: str) -> Principal:
        """`verify` without the positive-cache lookup, for a caller that has just missed with `cached`.

        A token refused within `negative_ttl` is refused again without a request; a check of a token already being
        checked waits for that request instead of sending another. Cancelling a caller does not cancel the request.
        """
        key = hashlib.sha256(token.encode()).digest()
        outcome: Principal | str | None = self._refused.get(key)
        if outcome is None:
            outcome = await self._checks.run(key, lambda: self._check(token, key))
        if isinstance(outcome, Principal):
            return outcome
        raise invalid_token(outcome)

    async def _check(self, token: str, key: bytes) -> Principal | str:
        """Ask the endpoint and check its answer: the principal (cached), or why the token is refused."""
        try:
            async with self._slots:
                claims = await self._introspect(token)
            now = self._clock()
            exp = checks.check_expiry(claims, now, self._skew, required=False)
            principal = self._principal(claims, exp)
        except AuthenticationError as exc:  # the issuer's answer refuses the token: it will for a while yet
            self._refused.put(key, exc.description, self._clock() + self._negative_ttl)
            return exc.description
        except (FetchError, UnsafeURLError) as exc:
            logger.warning("token introspection failed: %s", exc)
            return _UNAVAILABLE
        try:
            checks.check_not_before(claims, now, self._skew)
        except AuthenticationError as exc:  # valid later: not remembered
            return exc.description
        until = now + self._cache_ttl
        self._cache.put(token, principal, until if exp is None else min(exp, until))
        return principal

    def _principal(self, claims: Mapping[str, Any], exp: float | None) -> Principal:
        if self._issuer is not None:
            checks.check_issuer(claims, self._issuer, required=False)
        if self._audience is not None:
            checks.check_audience(claims, self._audience, required=True)
        subject = checks.require_subject(claims)
        issuer = claims.get("iss")
        return Principal(
            subject=subject,
            issuer=issuer if isinstance(issuer, str) else (self._issuer or ""),
            kind="opaque",
            claims=claims,
            expires_at=exp,
        )

    @abstractmethod
    async def _introspect(self, token: str) -> dict[str, Any]:
        """The token's claims, or `AuthenticationError` when the endpoint says it is not valid."""

    def _json_object(self, resp: FetchResponse, what: str) -> dict[str, Any]:
        body = resp.json()
        if not isinstance(body, dict):
            raise FetchError(f"{what} answer is not a JSON object")
        return body


class RFC7662Introspector(Introspector):
    """RFC 7662 section 2: POST the token to the introspection endpoint, authenticated as the client. `url` is the
    endpoint, or a function that finds it (discovery), None meaning the issuer has none."""

    def __init__(
        self,
        http: GuardedHTTPClient,
        url: str | Callable[[], Awaitable[str | None]],
        *,
        client_id: str | None,
        client_secret: str | None,
        issuer: str | None,
        audience: str | None,
        **options: Any,
    ) -> None:
        super().__init__(http, issuer=issuer, audience=audience, **options)
        self._url = url
        self._headers = {"Accept": "application/json"}
        if client_id:
            self._headers["Authorization"] = basic_auth(client_id, client_secret or "")

    async def _introspect(self, token: str) -> dict[str, Any]:
        url = self._url if isinstance(self._url, str) else await self._url()
        if url is None:
            raise invalid_token("Token is not a valid JWT, and the issuer publishes no introspection_endpoint")
        resp = await self._http.fetch(
            "POST",
            url,
            headers=self._headers,
            data={"token": token, "token_type_hint": "access_token"},
            max_bytes=INTROSPECTION_MAX_BYTES,
        )
        if resp.status != 200:
            raise FetchError(f"introspection endpoint answered HTTP {resp.status}")
        claims = self._json_object(resp, "introspection")
        if claims.get("active") is not True:
            raise invalid_token("Token is not active")
        return claims


class GoogleTokenInfoIntrospector(Introspector):
    """Google's tokeninfo endpoint: GET `?access_token=`; the audience is mandatory."""

    def __init__(
        self, http: GuardedHTTPClient, *, audience: str, url: str = GOOGLE_TOKENINFO_URL, **options: Any
    ) -> None:
        super().__init__(http, issuer=GOOGLE_ISSUER, audience=audience, **options)
        self._url = url

    async def _introspect(self, token: str) -> dict[str, Any]:
        resp = await self._http.fetch(
            "GET", self._url, params={"access_token": token}, max_bytes=INTROSPECTION_MAX_BYTES
        )
        if resp.status == 400:
            raise invalid_token("Token is not active")
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
                    raise invalid_token(f"Invalid '{name}' claim") from exc
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
        super().__init__(http, issuer=GITHUB_ISSUER, audience=None, **options)
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
            raise invalid_token("Token is not active")
        if resp.status != 200:
            raise FetchError(f"GitHub token check answered HTTP {resp.status}")
        return _github_claims(self._json_object(resp, "GitHub token check"))


def _github_claims(body: dict[str, Any]) -> dict[str, Any]:
    user = body.get("user")
    if not isinstance(user, dict):
        raise invalid_token(checks.INVALID_CLAIMS)
    user_id = user.get("id")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise invalid_token(checks.INVALID_CLAIMS)
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
            raise invalid_token("Invalid 'exp' claim") from exc
    return claims


def build_introspector(
    cfg: OIDCConfig, http: GuardedHTTPClient, discovered: Callable[[], Awaitable[str | None]] | None = None
) -> Introspector:
    """The introspector for `cfg.introspection_url`, its dialect chosen from the URL; without one, RFC 7662 at the
    endpoint `discovered` finds (the issuer's discovery document). Call after `cfg.validate()`."""
    url = cfg.introspection_url
    options: dict[str, Any] = {"clock_skew": cfg.clock_skew, "cache_size": cfg.cache_size}
    if not url:
        if discovered is None:
            raise ConfigError("--oidc-introspection-url is not set")
        return RFC7662Introspector(http, discovered, client_id=cfg.client_id, client_secret=cfg.client_secret,
                                   issuer=cfg.issuer, audience=cfg.audience, **options)  # fmt: skip
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
