"""RFC 7517 section 5 JSON Web Key Sets: the issuer's public signing keys, cached by `kid`.

A token naming an unknown `kid` waits for one refetch (the issuer may have rotated its keys), at most once per
`refetch_interval` seconds; concurrent misses wait for that same fetch. A known key is always answered at once: when
the set is older than `max_age`, the first use starts a refresh in the background and the old keys serve meanwhile
(stale-while-revalidate). A key the issuer withdrew from the set stops being trusted once a refresh succeeds; a
failed refresh keeps the old keys and is retried at most once per `refetch_interval`. Symmetric (`oct`) keys and
keys marked for encryption are ignored. With `auth_token_file` (a Kubernetes service-account token), the file is
re-read on every fetch and sent as `Authorization: Bearer` to the JWKS URL only.

Readiness (`ready()`, the `keys` check of `/readyz`): fine once a fetch has brought at least one usable key; until
then a probe fetches the set itself, through the same cache and under the same rate limit (a failing JWKS is asked
at most once per `refetch_interval`, however often probes come), and answers why there is no key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from hivegate.core.singleflight import SingleFlight
from hivegate.errors import FetchError, UnsafeURLError
from hivegate.httpclient.guard import DOCUMENT_MAX_BYTES, GuardedHTTPClient

__all__ = ["JWKSCache", "KeySource", "PublicKey", "StaticKeys", "parse_jwks"]

logger = logging.getLogger(__name__)

PublicKey = RSAKey | ECKey | OKPKey


def parse_jwks(doc: Any) -> dict[str, PublicKey]:
    """The usable signature keys of a JWK Set document, by `kid`. Keys without `kid` cannot be selected and are
    skipped; so are `oct` keys, `use: enc` keys and keys that do not import. The first key wins a duplicate `kid`."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise FetchError("JWKS document has no 'keys' list")
    keys: dict[str, PublicKey] = {}
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or kid in keys:
            continue
        if jwk.get("kty") not in ("RSA", "EC", "OKP") or jwk.get("use", "sig") != "sig":
            continue
        try:
            key = JWKRegistry.import_key(jwk)
        except (JoseError, ValueError, TypeError) as exc:
            logger.info("skipping JWKS key %r: %s", kid, type(exc).__name__)
            continue
        if isinstance(key, RSAKey | ECKey | OKPKey):
            keys[kid] = key
    return keys


class KeySource(Protocol):
    """Where verification keys come from: a remote JWKS (`JWKSCache`) or keys held in-process (`StaticKeys`)."""

    async def get(self, kid: str) -> PublicKey | None: ...


class StaticKeys:
    """Keys known in-process (e.g. the embedded authorization server's own), as a `KeySource`."""

    def __init__(self, jwks: Any) -> None:
        self._keys = parse_jwks(jwks)

    async def get(self, kid: str) -> PublicKey | None:
        return self._keys.get(kid)

    async def ready(self) -> str | None:
        """A readiness check: None when there is at least one usable key."""
        return None if self._keys else "no usable signing key"


class JWKSCache:
    """The signing keys of one issuer; `get(kid)` returns the key or None when the issuer has no such key."""

    def __init__(
        self,
        http: GuardedHTTPClient,
        jwks_url: str | Callable[[], Awaitable[str]],
        *,
        auth_token_file: str | None = None,
        refetch_interval: float = 10.0,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._jwks_url = jwks_url
        self._auth_token_file = auth_token_file
        self._refetch_interval = refetch_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, PublicKey] = {}
        self._loaded_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not
        self._fetches: SingleFlight[None, None] = SingleFlight()  # one fetch at a time, joined by who needs it
        self._problem: str | None = None  # why the last fetch failed (None: it did not)

    async def get(self, kid: str) -> PublicKey | None:
        """The key named `kid`, or None when the issuer has no such key.

        A known key is returned at once (a stale set is refreshed in the background); an unknown `kid` waits for a
        refetch when the rate limit allows. Raises `FetchError`/`UnsafeURLError` only when no keys could ever be had.
        """
        key = self._keys.get(kid)
        if key is not None:
            if self._stale() and None not in self._fetches and self._may_fetch():
                self._fetches.start(None, self._refresh_stale)
            return key
        if None in self._fetches or self._may_fetch():
            await self._fetches.run(None, self._fetch_keeping_known_keys)
        return self._keys.get(kid)

    async def ready(self) -> str | None:
        """A readiness check: None when the set has been fetched and holds at least one usable key; otherwise why
        not (one short line, no secret). Without keys yet, fetches the set when the rate limit allows; the fetch runs
        on even if this probe gives up waiting, so the next probe has its outcome. Never fetches once keys are held
        (refreshing them is `get`'s business)."""
        if self._keys:
            return None
        if None in self._fetches or self._may_fetch():
            try:
                await self._fetches.run(None, self._fetch_keeping_known_keys)
            except (FetchError, UnsafeURLError):
                pass  # recorded in `_problem`
            except Exception as exc:
                logger.exception("JWKS fetch for a readiness probe failed")
                self._problem = type(exc).__name__
        if self._keys:
            return None
        if self._problem is not None:
            return f"JWKS unavailable: {self._problem}"
        if self._loaded_at is not None:
            return "the JWKS holds no usable signing key"
        return "JWKS not fetched yet"

    async def _refresh_stale(self) -> None:
        try:
            await self._fetch_keeping_known_keys()
        except Exception:  # nobody awaits this run: report here
            logger.exception("JWKS background refresh failed")

    async def _fetch_keeping_known_keys(self) -> None:
        try:
            await self._fetch()
        except (FetchError, UnsafeURLError) as exc:
            self._problem = str(exc)
            if self._loaded_at is None:
                raise
            logger.warning("JWKS refresh failed; keeping the %d keys already known: %s", len(self._keys), exc)

    def _stale(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at > self._max_age

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._refetch_interval

    async def _fetch(self) -> None:
        self._attempted_at = self._clock()
        url = self._jwks_url if isinstance(self._jwks_url, str) else await self._jwks_url()
        headers = {"Accept": "application/jwk-set+json, application/json"}
        if self._auth_token_file:
            headers["Authorization"] = "Bearer " + await _read_token_file(Path(self._auth_token_file))
        resp = await self._http.fetch("GET", url, headers=headers, max_bytes=DOCUMENT_MAX_BYTES)
        if resp.status != 200:
            raise FetchError(f"JWKS at {url} answered HTTP {resp.status}")
        self._keys = parse_jwks(resp.json())
        self._loaded_at = self._clock()
        self._problem = None
        logger.debug("loaded %d signing keys from %s", len(self._keys), url)


_TOKEN_FILE = "--jwks-auth-token-file, or jwksAuthTokenPath in a vMCP config"  # noqa: S105 - a hint, not a secret


async def _read_token_file(path: Path) -> str:
    try:
        token = (await asyncio.to_thread(path.read_text, encoding="utf-8")).strip()
    except OSError as exc:
        raise FetchError(f"cannot read the JWKS auth token file {path} ({_TOKEN_FILE}): {exc.strerror}") from exc
    if not token:
        raise FetchError(f"the JWKS auth token file {path} ({_TOKEN_FILE}) is empty")
    return token
