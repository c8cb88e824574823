"""What the embedded authorization server keeps in its store, read raw from the store itself, through real processes
only (hivegate, oidc-provider, redis-server, a header-recording MCP server):

- after a login through the real upstream, no upstream token is in clear in SQLite or Redis, and `--upstream-inject`
  still hands the backend the upstream's access token (the store's records are sealed, `authserver.sealing`);
- 20 concurrent refreshes of one refresh token at `/oauth/token` give one successor, which works."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from e2e.oidc_provider import OIDCProvider, start_oidc_provider, web_client
from e2e.test_outgoing_auth import UPSTREAM_API, auth_server, claims_of, with_issuer
from e2e.test_run_outgoing_flags import seen_headers
from support.backend import fixture_http_server, free_port
from support.gateway import RunningGateway, hivegate_run
from support.oauth_login import log_in, refresh
from support.redis_server import start_redis

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CLIENT = "store-as"
ENV = {"E2E_STORE_AS_HMAC": "s" * 40, "E2E_STORE_AS_SECRET": "store-upstream-secret"}
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.")
PREFIX = "e2e:store:"


@dataclass
class Stored:
    idp: OIDCProvider
    gateway: RunningGateway
    base: str
    storage: dict[str, Any]
    redis_url: str | None = None

    async def raw(self) -> bytes:
        """Every record of the store, as the store holds it."""
        if self.redis_url is None:
            with sqlite3.connect(self.storage["sqlite"]["path"]) as db:
                rows = db.execute("SELECT ns, key, value FROM kv").fetchall()
            return "\n".join(" ".join(str(v) for v in row) for row in rows).encode()
        redis = Redis.from_url(self.redis_url)
        try:
            keys = await redis.keys(f"{PREFIX}*")
            values = [await redis.get(key) for key in keys]
        finally:
            await redis.aclose()
        return b"\n".join(k + b" " + (v or b"") for k, v in zip(keys, values, strict=True))


@asynccontextmanager
async def gateway(tmp_path: Path, kind: str, *, access_ttl: int = 3600) -> AsyncIterator[Stored]:
    """oidc-provider as the upstream, `hivegate run --auth-server-config … --upstream-inject corp` in front of a header
    recorder, its store in SQLite or in a real Redis."""
    port = free_port()
    client = web_client(CLIENT, [f"http://127.0.0.1:{port}/oauth/callback"], secret=ENV["E2E_STORE_AS_SECRET"])
    async with AsyncExitStack() as stack:
        redis_url = None
        if kind == "redis":
            redis_url = (await stack.enter_async_context(start_redis())).url
            storage: dict[str, Any] = {"type": "redis", "redis": {"url": redis_url, "keyPrefix": PREFIX}}
        else:
            storage = {"type": "sqlite", "sqlite": {"path": str(tmp_path / "as.db")}}
        idp = await stack.enter_async_context(
            start_oidc_provider(clients=[client], default_resource=UPSTREAM_API, access_token_ttl=access_ttl)
        )
        backend = await stack.enter_async_context(fixture_http_server())
        config = tmp_path / "as.yaml"
        doc = auth_server(port, CLIENT, tmp_path, {"storage": storage})
        doc["upstreamProviders"][0]["oidcConfig"]["additionalAuthorizationParams"] = {"prompt": "consent"}  # offline
        config.write_text(with_issuer(doc, idp.issuer))
        args = ["--port", str(port), "--auth-server-config", str(config), "--upstream-inject", "corp", backend]
        gw = await stack.enter_async_context(hivegate_run(args, env=ENV))
        yield Stored(idp, gw, f"http://127.0.0.1:{port}", storage, redis_url)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_no_upstream_token_is_stored_in_clear(tmp_path: Path, kind: str) -> None:
    async with gateway(tmp_path, kind) as s, httpx.AsyncClient(timeout=10) as http:
        _, tokens = await log_in(http, s.base)
        seen = await seen_headers(s.gateway.url, tokens["access_token"])
        raw = await s.raw()
    upstream_access = seen["authorization"].removeprefix("Bearer ")
    assert claims_of(seen["authorization"])["iss"] == s.idp.issuer  # the backend got the upstream's own token
    assert b"session" in raw  # the login's session is there, sealed
    assert upstream_access.encode() not in raw
    assert JWT.search(raw) is None  # neither the upstream's access token nor its ID token
    for name in (b'"access_token":', b'"refresh_token":', b'"id_token":', b'"verifier":'):
        assert name not in raw  # not even the fields of a token record or of a pending login
    assert tokens["refresh_token"].encode() not in raw  # our own refresh token: only its hash is a key


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_concurrent_refreshes_of_one_token_give_one_successor(tmp_path: Path, kind: str) -> None:
    async with gateway(tmp_path, kind) as s, httpx.AsyncClient(timeout=30) as http:
        client_id, tokens = await log_in(http, s.base)
        answers = await asyncio.gather(*(refresh(http, s.base, client_id, tokens["refresh_token"]) for _ in range(20)))
        assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
        successors = {a.json()["refresh_token"] for a in answers}
        assert len(successors) == 1
        (successor,) = successors
        for answer in answers:
            assert (await seen_headers(s.gateway.url, answer.json()["access_token"]))["authorization"]
        again = await refresh(http, s.base, client_id, successor)
        assert again.status_code == 200, again.text
        assert again.json()["refresh_token"] not in (successor, tokens["refresh_token"])
