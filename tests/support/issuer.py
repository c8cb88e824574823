"""A real local token issuer for tests: an aiohttp server publishing a JWKS (and discovery), plus token minting, and
a token endpoint doing RFC 8693 token exchange: a subject token it issued (signature and expiry checked) for one of
the requested `audience`, with the subject's `sub` and `groups`."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from support.webserver import serve_on_loopback

EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@dataclass
class LocalIssuer:
    url: str
    key: RSAKey
    jwks_requests: int = 0
    exchanges: int = 0
    extra_keys: list[RSAKey] = field(default_factory=list)

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

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
        return web.json_response(
            {"issuer": issuer.url, "jwks_uri": issuer.jwks_url, "token_endpoint": issuer.token_url}
        )

    async def exchange(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != EXCHANGE_GRANT:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            subject = jwt.decode(str(form.get("subject_token", "")), issuer.key).claims
            jwt.JWTClaimsRegistry(exp={"essential": True}).validate(subject)
        except JoseError:
            return web.json_response({"error": "invalid_grant", "error_description": "bad subject token"}, status=400)
        issuer.exchanges += 1
        claims = {k: subject[k] for k in ("sub", "groups") if k in subject}
        token = issuer.token(str(form.get("audience") or "hivegate-test"), **claims)
        return web.json_response({"access_token": token, "issued_token_type": ACCESS_TOKEN_TYPE,
                                  "token_type": "Bearer", "expires_in": 300})  # fmt: skip

    app = web.Application()
    app.router.add_post("/token", exchange)
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/.well-known/openid-configuration", discovery)
    async with serve_on_loopback(app) as base:
        issuer.url = base
        yield issuer
