"""A real identity provider on 127.0.0.1 for the authn tests: discovery, JWKS, RFC 7662 introspection, Google
tokeninfo and GitHub token-check endpoints, each counting the requests it gets; plus token minting helpers."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import anyio
from aiohttp import web
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from support.webserver import serve_on_loopback

AUDIENCE = "https://mcp.example.test/mcp"
CLIENT_ID = "gateway-client"
CLIENT_SECRET = "s3cret:with/odd chars"
GITHUB_CLIENT_ID = "gh-client"
GITHUB_CLIENT_SECRET = "gh-secret"

SigningKey = RSAKey | ECKey | OKPKey


@dataclass
class LocalIdP:
    base: str = ""
    published: list[SigningKey] = field(default_factory=list)
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    jwks_auth: list[str | None] = field(default_factory=list)
    discovery_issuer: str | None = None  # None: the real issuer
    discovery_failures: int = 0  # answer this many discovery requests with HTTP 500 first
    introspection: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> RFC 7662 answer
    introspection_auth: list[str | None] = field(default_factory=list)
    introspection_forms: list[dict[str, str]] = field(default_factory=list)
    introspection_gate: asyncio.Event | None = None  # when set: introspection answers wait for the event
    introspection_in_flight: int = 0
    introspection_peak: int = 0  # most introspection requests ever in flight at once
    tokeninfo: dict[str, dict[str, Any]] = field(default_factory=dict)  # Google: token -> answer
    github: dict[str, dict[str, Any]] = field(default_factory=dict)  # GitHub: token -> answer
    github_calls: list[tuple[str, str | None, Any]] = field(default_factory=list)  # (path, auth, body)

    @property
    def issuer(self) -> str:
        return self.base

    @property
    def jwks_url(self) -> str:
        return f"{self.base}/jwks"

    def count(self, route: str) -> int:
        return self.requests.get(route, 0)

    def _hit(self, route: str) -> None:
        self.requests[route] = self.requests.get(route, 0) + 1

    def token(
        self,
        key: SigningKey,
        *,
        alg: str = "RS256",
        kid: str | None = "",
        now: int | None = None,
        **claims: Any,
    ) -> str:
        """A token signed by `key`; claims default to a valid set (issued at `now`, default the wall clock); a claim
        given as None is left out."""
        now = int(time.time()) if now is None else now
        body: dict[str, Any] = {"iss": self.issuer, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        header: dict[str, Any] = {"alg": alg}
        if kid == "":
            kid = key.kid
        if kid is not None:
            header["kid"] = kid
        return sign(header, body, key)


def sign(header: dict[str, Any], claims: dict[str, Any], key: SigningKey | OctKey) -> str:
    with warnings.catch_warnings():  # joserfc warns that the name EdDSA is deprecated (RFC 9864)
        warnings.simplefilter("ignore", SecurityWarning)
        return jwt.encode(header, claims, key, algorithms=[header["alg"]])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@asynccontextmanager
async def run_idp() -> AsyncIterator[LocalIdP]:
    idp = LocalIdP()

    async def discovery(_request: web.Request) -> web.Response:
        idp._hit("discovery")
        if idp.discovery_failures > 0:
            idp.discovery_failures -= 1
            return web.json_response({"error": "temporarily_unavailable"}, status=500)
        issuer = idp.discovery_issuer or idp.issuer
        return web.json_response({"issuer": issuer, "jwks_uri": idp.jwks_url})

    async def jwks(request: web.Request) -> web.Response:
        idp._hit("jwks")
        idp.jwks_auth.append(request.headers.get("Authorization"))
        keys = [k.as_dict(private=False) for k in idp.published] + idp.extra_jwks
        return web.json_response({"keys": keys})

    async def introspect(request: web.Request) -> web.Response:
        idp._hit("introspect")
        auth = request.headers.get("Authorization")
        idp.introspection_auth.append(auth)
        form = dict((await request.post()).items())
        if idp.introspection_gate is not None:
            idp.introspection_in_flight += 1
            idp.introspection_peak = max(idp.introspection_peak, idp.introspection_in_flight)
            try:
                await idp.introspection_gate.wait()
            finally:
                idp.introspection_in_flight -= 1
        idp.introspection_forms.append({k: str(v) for k, v in form.items()})
        if auth != basic(quote_plus(CLIENT_ID), quote_plus(CLIENT_SECRET)):
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response(idp.introspection.get(str(form.get("token")), {"active": False}))

    async def tokeninfo(request: web.Request) -> web.Response:
        idp._hit("tokeninfo")
        answer = idp.tokeninfo.get(request.query.get("access_token", ""))
        if answer is None:
            return web.json_response({"error_description": "Invalid Value"}, status=400)
        return web.json_response(answer)

    async def github(request: web.Request) -> web.Response:
        idp._hit("github")
        body = await request.json()
        idp.github_calls.append((request.path, request.headers.get("Authorization"), body))
        if request.headers.get("Authorization") != basic(GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET):
            return web.json_response({"message": "Bad credentials"}, status=401)
        answer = idp.github.get(body.get("access_token", ""))
        if answer is None:
            return web.json_response({"message": "Not Found"}, status=404)
        return web.json_response(answer)

    async def big(_request: web.Request) -> web.Response:
        idp._hit("big")
        return web.Response(body=b"x" * (2 * 1024 * 1024), content_type="application/json")

    async def big_stream(request: web.Request) -> web.StreamResponse:
        idp._hit("big-stream")
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(40):
            await resp.write(b"y" * 4096)
        await resp.write_eof()
        return resp

    async def redirect(_request: web.Request) -> web.Response:
        idp._hit("redirect")
        raise web.HTTPFound(idp.jwks_url)

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_post("/introspect", introspect)
    app.router.add_get("/tokeninfo", tokeninfo)
    app.router.add_post("/applications/{client_id}/token", github)
    app.router.add_get("/big", big)
    app.router.add_get("/big-stream", big_stream)
    app.router.add_get("/redirect", redirect)
    async with serve_on_loopback(app) as base:
        idp.base = base
        yield idp


@dataclass(frozen=True)
class Ago:
    """A time `seconds` before the test's own clock, for parametrized claims: resolved by `at` when the test runs,
    never when the module is collected (a suite that runs long must not turn a future `nbf` into a past one)."""

    seconds: int


@dataclass(frozen=True)
class Ahead:
    """A time `seconds` after the test's own clock (see `Ago`)."""

    seconds: int


def at(now: float, claims: dict[str, Any]) -> dict[str, Any]:
    """`claims` with every `Ago`/`Ahead` replaced by an epoch time relative to `now`."""
    resolved: dict[str, Any] = {}
    for name, value in claims.items():
        if isinstance(value, Ago):
            value = int(now) - value.seconds
        elif isinstance(value, Ahead):
            value = int(now) + value.seconds
        resolved[name] = value
    return resolved


class FakeClock:
    """A clock the test moves by hand (no sleeping)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def wait_until(condition: Callable[[], bool], *, deadline: float = 5.0) -> None:
    """Return once `condition()` holds; fail the test if it does not within `deadline` seconds (no fixed sleep)."""
    with anyio.fail_after(deadline):
        while not condition():
            await anyio.sleep(0.005)
