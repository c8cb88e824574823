"""An identity provider on 127.0.0.1 for the upstream tests: discovery, JWKS, a token endpoint that mints signed ID
tokens, userinfo (OIDC and GitHub-shaped), each recording what it was sent."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from support.webserver import serve_on_loopback

CLIENT_ID = "hivegate-upstream"
CLIENT_SECRET = "up secret/with:odd+chars"
REDIRECT_URI = "https://gateway.example.test/oauth/callback"
NONCE = "n-0S6_WzA2Mj"


@dataclass(frozen=True)
class Seen:
    """One request the IdP received."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class FakeIdP:
    key: RSAKey
    base: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)  # merged into discovery; a None value drops the key
    id_claims: dict[str, Any] = field(default_factory=dict)  # merged into minted ID tokens; None drops the claim
    id_token: str | None = None  # answered instead of a minted ID token
    nonce: str | None = NONCE  # put in minted ID tokens
    userinfo: dict[str, Any] = field(
        default_factory=lambda: {"sub": "alice", "name": "Alice Userinfo", "email": "alice@example.com"}
    )
    userinfo_status: int = 200
    token_reply: tuple[int, str, bytes] | None = None  # (status, content type, body) answered to any token request
    form_encoded: bool = False  # answer tokens form-encoded, as GitHub does without Accept: application/json
    rotate: bool = True  # a refresh brings a new refresh token
    refresh_id_token: bool = True  # a refresh brings a new ID token
    requests: list[Seen] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)  # every token handed out

    @property
    def issuer(self) -> str:
        return self.base

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]

    def mint(self, **claims: Any) -> str:
        """An ID token signed by the IdP's key: valid for CLIENT_ID unless claims say otherwise."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "alice",
            "iat": now,
            "exp": now + 300,
            "name": "Alice IdToken",
            "groups": ["mcp-developers"],
        }
        if self.nonce is not None:
            body["nonce"] = self.nonce
        body.update(self.id_claims)
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, body, self.key)

    def _token(self, prefix: str) -> str:
        token = f"{prefix}-{secrets.token_urlsafe(12)}"
        self.issued.append(token)
        return token


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """The signing input of a JWS (header.payload), for tokens signed by hand."""
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@asynccontextmanager
async def run_idp(key: RSAKey) -> AsyncIterator[FakeIdP]:
    idp = FakeIdP(key)

    async def record(request: web.Request) -> Seen:
        form = {k: str(v) for k, v in (await request.post()).items()} if request.method == "POST" else {}
        seen = Seen(request.method, request.path, dict(request.headers), form)
        idp.requests.append(seen)
        return seen

    async def discovery(request: web.Request) -> web.Response:
        await record(request)
        doc: dict[str, Any] = {
            "issuer": idp.issuer,
            "authorization_endpoint": f"{idp.base}/authorize",
            "token_endpoint": f"{idp.base}/token",
            "userinfo_endpoint": f"{idp.base}/userinfo",
            "jwks_uri": f"{idp.base}/jwks",
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }
        doc.update(idp.metadata)
        return web.json_response({k: v for k, v in doc.items() if v is not None})

    async def jwks(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"keys": [idp.key.as_dict(private=False)]})

    async def token(request: web.Request) -> web.Response:
        seen = await record(request)
        if idp.token_reply is not None:
            status, content_type, body = idp.token_reply
            return web.Response(status=status, body=body, content_type=content_type)
        grant = seen.form.get("grant_type")
        answer: dict[str, Any] = {"access_token": idp._token("at"), "token_type": "Bearer", "expires_in": 3600}
        if grant == "authorization_code":
            if seen.form.get("code") != "good-code":
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "The code has expired"}, status=400
                )
            answer["refresh_token"] = idp._token("rt")
            answer["scope"] = "openid offline_access"
            answer["id_token"] = idp.id_token or idp.mint()
        elif grant == "refresh_token":
            if idp.rotate:
                answer["refresh_token"] = idp._token("rt")
            if idp.refresh_id_token:
                answer["id_token"] = idp.id_token or idp.mint(nonce=None)
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if idp.id_token is not None:
            idp.issued.append(idp.id_token)
        elif "id_token" in answer:
            idp.issued.append(answer["id_token"])
        if idp.form_encoded:
            answer.pop("id_token", None)
            return web.Response(text=urlencode(answer), content_type="application/x-www-form-urlencoded")
        return web.json_response(answer)

    async def userinfo(request: web.Request) -> web.Response:
        await record(request)
        if idp.userinfo_status != 200:
            return web.json_response({"error": "invalid_token"}, status=idp.userinfo_status)
        return web.json_response(idp.userinfo)

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_post("/token", token)
    for path in ("/userinfo", "/user"):
        app.router.add_get(path, userinfo)
        app.router.add_post(path, userinfo)
    async with serve_on_loopback(app) as base:
        idp.base = base
        yield idp
