"""The credential strategies of `outgoingAuth` (ToolHive's `MCPExternalAuthConfig` types), as request headers.

- `NoCredentials` (`unauthenticated`) and `StaticHeader` (`headerInjection`) do not depend on the caller.
- `ExchangedToken` (`tokenExchange`, RFC 8693): the subject token is the caller's token from an upstream provider of
  the embedded authorization server, or, without one, the caller's own validated incoming token; it is exchanged at
  the STS for a token the backend accepts. Exchanged tokens are cached per subject token (this instance fixes the
  audience and scopes) until 30 s before they expire; concurrent misses for one subject make one request. An STS
  error becomes an `OutgoingAuthError` naming the STS's error code, for that call alone.
- `UpstreamToken` (`upstreamInject`): the caller's access token from one upstream provider, refreshed by the
  authorization server when it has expired; without one (no refresh token, or the upstream refused it, e.g.
  `invalid_grant`) the caller must log in again (`LoginRequired`: HTTP 401 with a `WWW-Authenticate` challenge, so an
  MCP client starts its login). When the upstream cannot be reached to refresh it (network failure, timeout, HTTP 5xx,
  `temporarily_unavailable`) the caller's login is still good: that call alone fails with an `OutgoingAuthError`
  ("upstream provider 'X' unreachable"), a JSON-RPC error, not a 401.

No token ever appears in an error message or a log line.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from hivegate.authserver.service import UPSTREAM_TRANSIENT
from hivegate.authserver.upstream.base import UpstreamError, UpstreamTokens
from hivegate.authserver.upstream.exchange import ClientAuth, request_tokens
from hivegate.core.singleflight import SingleFlight
from hivegate.errors import AuthenticationError, BackendError
from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.outgoing.caller import Caller

__all__ = [
    "Credentials",
    "ExchangedToken",
    "LoginRequired",
    "NoCredentials",
    "OutgoingAuthError",
    "StaticHeader",
    "SubjectSource",
    "UpstreamLookup",
    "UpstreamToken",
    "caller_token",
    "upstream_subject",
]

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a token type URN
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a token type URN
RENEW_BEFORE = 30.0  # seconds before expiry an exchanged token is replaced
DEFAULT_TTL = 60.0  # how long to keep an exchanged token whose expiry the STS did not say
CACHE_ENTRIES = 10_000

# (session id, provider) → that session's tokens from the provider, refreshed if needed; None: there are none (log
# in again); `UpstreamError`: the refresh failed (an `UPSTREAM_TRANSIENT` code: the upstream is unreachable)
UpstreamLookup = Callable[[str, str], Awaitable[UpstreamTokens | None]]


class OutgoingAuthError(BackendError):
    """The backend's credential could not be obtained; the caller gets a JSON-RPC error saying why."""


class LoginRequired(AuthenticationError):
    """The caller's upstream login is missing or expired beyond refresh: HTTP 401, the client logs in again."""

    def __init__(self, description: str) -> None:
        super().__init__("invalid_token", description)


class Credentials(Protocol):
    @property
    def needs_caller(self) -> bool:
        """True when the credential depends on who calls (no credential for the gateway's own requests)."""
        ...

    async def headers(self, caller: Caller | None) -> dict[str, str]:
        """The headers for one backend request on behalf of `caller`."""
        ...


class NoCredentials:
    needs_caller = False

    async def headers(self, caller: Caller | None) -> dict[str, str]:
        return {}


class StaticHeader:
    needs_caller = False

    def __init__(self, name: str, value: str) -> None:
        self.fixed = {name: value}

    def __repr__(self) -> str:
        return f"StaticHeader({next(iter(self.fixed))!r})"

    async def headers(self, caller: Caller | None) -> dict[str, str]:
        return self.fixed


SubjectSource = Callable[[Caller | None], Awaitable[str]]


def caller_token() -> SubjectSource:
    """The caller's own validated incoming token as the subject (no embedded authorization server)."""

    async def subject(caller: Caller | None) -> str:
        if caller is None or not caller.token:
            raise OutgoingAuthError("token exchange needs the caller's token, and this request carries none")
        return caller.token

    return subject


def upstream_subject(lookup: UpstreamLookup, provider: str, *, id_token: bool = False) -> SubjectSource:
    """The caller's token from `provider` (kept by the embedded authorization server) as the subject."""

    async def subject(caller: Caller | None) -> str:
        tokens = await _upstream_tokens(lookup, caller, provider)
        token = tokens.id_token if id_token else tokens.access_token
        if not token:
            raise LoginRequired(f"no {'ID' if id_token else 'access'} token from {provider!r}: log in again")
        return token

    return subject


class ExchangedToken:
    needs_caller = True

    def __init__(
        self,
        *,
        token_url: str,
        http: GuardedHTTPClient,
        subject: SubjectSource,
        client_id: str | None = None,
        client_secret: str | None = None,
        audience: str | None = None,
        scopes: tuple[str, ...] = (),
        subject_token_type: str = ACCESS_TOKEN_TYPE,
        header_name: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = token_url
        self._http = http
        self._subject = subject
        self._auth = ClientAuth(client_id or "", client_secret, "client_secret_basic" if client_secret else "none")
        self._form = {"grant_type": GRANT, "subject_token_type": subject_token_type,
                      "requested_token_type": ACCESS_TOKEN_TYPE}  # fmt: skip
        if audience:
            self._form["audience"] = audience
        if scopes:
            self._form["scope"] = " ".join(scopes)
        self._header = header_name
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._exchanges: SingleFlight[bytes, tuple[str, float]] = SingleFlight()
        self.exchanges = 0  # requests made to the STS (for tests and metrics)

    def __repr__(self) -> str:
        return f"ExchangedToken({self._url!r}, audience={self._form.get('audience')!r})"

    async def headers(self, caller: Caller | None) -> dict[str, str]:
        token = await self.token(await self._subject(caller))
        if self._header is None:
            return {"Authorization": f"Bearer {token}"}
        return {self._header: token}

    async def token(self, subject_token: str) -> str:
        """The exchanged token for `subject_token`, from the cache when it is still good."""
        key = hashlib.sha256(subject_token.encode()).digest()
        cached = self._cache.get(key)
        if cached is not None and cached[1] - RENEW_BEFORE > self._clock():
            self._cache.move_to_end(key)  # least recently used goes first when the cache is full
            return cached[0]
        token, expires_at = await self._exchanges.run(key, lambda: self._exchange(subject_token))
        self._cache[key] = (token, expires_at)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return token

    async def _exchange(self, subject_token: str) -> tuple[str, float]:
        form = {**self._form, "subject_token": subject_token}
        self.exchanges += 1
        try:
            tokens = await request_tokens(self._http, self._url, form, self._auth, clock=self._clock)
        except UpstreamError as exc:
            if exc.error == "temporarily_unavailable":
                raise OutgoingAuthError(f"token exchange: the STS is unreachable ({exc.description})") from None
            raise OutgoingAuthError(f"token exchange refused by the STS: {exc.error}: {exc.description}") from None
        expires_at = tokens.expires_at or self._clock() + DEFAULT_TTL
        return tokens.access_token, expires_at


class UpstreamToken:
    needs_caller = True

    def __init__(self, lookup: UpstreamLookup, provider: str) -> None:
        self._lookup = lookup
        self._provider = provider

    def __repr__(self) -> str:
        return f"UpstreamToken({self._provider!r})"

    async def headers(self, caller: Caller | None) -> dict[str, str]:
        tokens = await _upstream_tokens(self._lookup, caller, self._provider)
        return {"Authorization": f"Bearer {tokens.access_token}"}


async def _upstream_tokens(lookup: UpstreamLookup, caller: Caller | None, provider: str) -> UpstreamTokens:
    session = caller.principal.claims.get("tsid") if caller is not None else None
    if not isinstance(session, str) or not session:
        raise LoginRequired(f"this token carries no login session with {provider!r}: log in through this gateway")
    try:
        tokens = await lookup(session, provider)
    except UpstreamError as exc:
        if exc.error in UPSTREAM_TRANSIENT:  # the login is fine; the upstream could not refresh its token just now
            raise OutgoingAuthError(f"upstream provider {provider!r} unreachable: {exc.description}") from None
        tokens = None  # the upstream refused the refresh (`invalid_grant`, …): only a new login helps
    if tokens is None:
        raise LoginRequired(f"the login at {provider!r} has expired: log in again")
    return tokens
