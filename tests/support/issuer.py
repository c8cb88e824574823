"""A real local token issuer for tests: an aiohttp server publishing a JWKS (and discovery), plus token minting."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from support.webserver import serve_on_loopback


@dataclass
class LocalIssuer:
    url: str
    key: RSAKey
    jwks_requests: int = 0
    extra_keys: list[RSAKey] = field(default_factory=list)

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    def token(self, audience: str = "hivegate-test", *, key: RSAKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.url, "aud": audience, "sub": "alice", "iat": now, "exp": now + 300}
        body.update(claims)
        signer = key or self.key
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, body, signer)

    def rotate(self) -> RSAKey:
        """Publish a new key (the old one stays published) and return it."""
        new = _new_key()
        self.extra_keys.append(new)
        return new


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(6), "alg": "RS256", "use": "sig"})


@asynccontextmanager
async def local_issuer() -> AsyncIterator[LocalIssuer]:
    issuer = LocalIssuer(url="", key=_new_key())

    async def jwks(_request: web.Request) -> web.Response:
        issuer.jwks_requests += 1
        keys = [k.as_dict(private=False) for k in (issuer.key, *issuer.extra_keys)]
        return web.json_response({"keys": keys})

    async def discovery(_request: web.Request) -> web.Response:
        return web.json_response({"issuer": issuer.url, "jwks_uri": issuer.jwks_url})

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/.well-known/openid-configuration", discovery)
    async with serve_on_loopback(app) as base:
        issuer.url = base
        yield issuer
