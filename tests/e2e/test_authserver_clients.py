"""Every MCP client logs in through the embedded authorization server (`hivegate run --auth-server-config`) and keeps
working once its access token expires: the official TypeScript SDK (`@modelcontextprotocol/sdk`, Node 22, an app whose
`OAuthClientProvider` has no `state()`) and the Python SDK (`mcp.client.auth.OAuthClientProvider`). Each goes through
discovery (RFC 9728, RFC 8414) → dynamic client registration (RFC 7591) → the consent page → login at a real OpenID
provider (oidc-provider) → code exchange with PKCE → a tool call → a refresh (RFC 6749 §6) → a tool call.

The access token lives at least a minute (the server's lower bound), too long to wait for, so each test makes it
expire where its client looks: the TypeScript SDK keeps no expiry and refreshes when the gateway answers 401, so its
app is handed the same token as it would look an hour later (signed with the server's key, refused by the gateway as
expired); the Python SDK refreshes before a request once the token's `expires_in` has passed, so its clock is moved
an hour ahead. The refreshes themselves go through the real server.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from joserfc import jwt
from joserfc.jwk import ECKey
from mcp.client.auth import oauth2 as sdk_oauth2
from mcp.shared import auth_utils as sdk_auth_utils

from e2e.oidc_provider import REPO, _drain, node_binary
from e2e.test_embedded_auth_server import (
    APP_REDIRECT,
    Browser,
    MemoryTokens,
    _unverified_claims,
    embedded_setup,
    run_args,
    sdk_client,
)
from support.gateway import hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TS_CLIENT = REPO / "tests" / "e2e" / "clients" / "ts_oauth_client.mjs"
HOUR = 3600


@dataclass
class TypeScriptApp:
    """`ts_oauth_client.mjs` running: its events (JSON lines on stdout) as they come, its commands on stdin."""

    process: Process
    lines: BufferedByteReceiveStream
    stderr: bytearray
    events: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(command).encode() + b"\n")

    async def next(self, kind: str, timeout: float = 15) -> dict[str, Any]:
        """The next event of `kind`; every event read on the way is kept in `events`."""
        with anyio.fail_after(timeout):
            while True:
                try:
                    event: dict[str, Any] = json.loads(await self.lines.receive_until(b"\n", 1 << 20))
                except (anyio.IncompleteRead, anyio.EndOfStream):
                    raise AssertionError(f"the app exited: {self.stderr.decode(errors='replace')}") from None
                self.events.append(event)
                assert event["event"] != "error", event["message"]
                if event["event"] == kind:
                    return event

    def requests(self, since: int = 0) -> list[tuple[str, str, str | None]]:
        """(method, path, grant_type) of each HTTP request the SDK made, from the `since`th event on."""
        made = [e for e in self.events[since:] if e["event"] == "request"]
        return [(e["method"], urlsplit(e["url"]).path, e.get("grant_type")) for e in made]


@asynccontextmanager
async def typescript_app(mcp_url: str) -> AsyncIterator[TypeScriptApp]:
    command = [node_binary(), str(TS_CLIENT), mcp_url, APP_REDIRECT]
    async with await anyio.open_process(command, env={**os.environ, "NODE_NO_WARNINGS": "1"}) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdin is not None
        stderr = bytearray()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_drain, process.stderr, stderr)
            try:
                yield TypeScriptApp(process, BufferedByteReceiveStream(process.stdout), stderr)
            finally:
                await process.stdin.aclose()  # the app closes its MCP session and exits
                with anyio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                tasks.cancel_scope.cancel()


def expired(access_token: str, signing_key: Path) -> str:
    """`access_token` as its client holds it an hour after it expired: the same header and claims with `iat`, `nbf`
    and `exp` moved back, signed with the server's own key. The gateway refuses it for its age alone."""
    key = ECKey.import_key(signing_key.read_bytes())
    token = jwt.decode(access_token, key)
    claims = dict(token.claims)
    shift = int(claims["exp"]) - (int(time.time()) - HOUR)  # it expired an hour ago
    for name in ("iat", "nbf", "exp"):
        if name in claims:
            claims[name] = int(claims[name]) - shift
    return jwt.encode(dict(token.header), claims, key)


async def test_the_typescript_sdk_logs_in_without_state_calls_a_tool_and_refreshes(tmp_path: Path) -> None:
    async with (
        embedded_setup(tmp_path) as setup,
        hivegate_run(run_args(setup), env=setup.env) as gw,
        typescript_app(gw.url) as app,
    ):
        authorize = await app.next("authorize")
        url = urlsplit(authorize["url"])
        query = parse_qs(url.query)
        assert f"{url.scheme}://{url.netloc}{url.path}" == f"{setup.issuer}/oauth/authorize"
        assert "state" not in query  # the app has no state(): the SDK sends none
        assert query["code_challenge_method"] == ["S256"]
        assert query["resource"] == [gw.url]
        assert app.requests()[-2:] == [
            ("GET", "/.well-known/oauth-authorization-server", None),
            ("POST", "/oauth/register", None),
        ]

        browser = Browser()
        await browser.visit(authorize["url"])  # consent page, then the login at oidc-provider, back to the app
        assert browser.landed is not None
        assert "error" not in browser.landed, browser.landed
        assert browser.consents == 1
        assert "state" not in browser.landed
        assert browser.landed["iss"] == setup.issuer
        await app.send({"code": browser.landed["code"]})
        login = await app.next("called")
        assert login["text"] == "logged in"
        assert ("POST", "/oauth/token", "authorization_code") in app.requests()
        first = login["tokens"]
        claims = _unverified_claims(first["access_token"])
        assert (claims["iss"], claims["aud"], claims["sub"]) == (setup.issuer, gw.url, "alice")

        old = expired(first["access_token"], tmp_path / "signing.pem")
        async with httpx.AsyncClient() as http:
            refused = await http.post(gw.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                      headers={"Authorization": f"Bearer {old}"})  # fmt: skip
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge
        assert "expired" in challenge

        seen = len(app.events)
        await app.send({"call": "after expiry", "access_token": old})
        refreshed = await app.next("called")
        assert refreshed["text"] == "after expiry"  # the call the 401 interrupted, retried with the new token
        made = app.requests(since=seen)
        assert made[0] == made[-1] == ("POST", "/mcp", None)  # the first answered 401: the access token has expired
        assert [r for r in made if r[1].startswith("/oauth/")] == [("POST", "/oauth/token", "refresh_token")]
        assert not [e for e in app.events[seen:] if e["event"] == "authorize"]  # no new login
        second = refreshed["tokens"]
        assert second["access_token"] != first["access_token"]
        assert second["refresh_token"] != first["refresh_token"]  # rotated
        renewed = _unverified_claims(second["access_token"])
        assert (renewed["sub"], renewed["tfam"]) == ("alice", claims["tfam"])  # from the same login

        seen = len(app.events)
        await app.send({"call": "again", "access_token": expired(second["access_token"], tmp_path / "signing.pem")})
        again = await app.next("called")  # the rotated refresh token refreshes in turn
        assert again["text"] == "again"
        assert ("POST", "/oauth/token", "refresh_token") in app.requests(since=seen)
        assert again["tokens"]["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
    assert not any("Traceback" in line for line in gw.stderr)


@dataclass
class ClientClock:
    """`time` as the Python SDK's OAuth client reads it: `ahead` seconds after the machine's."""

    ahead: float = 0

    def time(self) -> float:
        return time.time() + self.ahead


async def test_the_python_sdk_refreshes_an_expired_access_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ClientClock()
    monkeypatch.setattr(sdk_oauth2, "time", clock)  # where the SDK checks a token's expiry
    monkeypatch.setattr(sdk_auth_utils, "time", clock)  # where it computes the expiry from `expires_in`
    async with embedded_setup(tmp_path) as setup, hivegate_run(run_args(setup), env=setup.env) as gw:
        browser, storage = Browser(), MemoryTokens()
        async with sdk_client(gw.url, browser, storage) as client:
            before = await client.call_tool("echo", {"text": "before"})
            assert before.content[0].text == "before"  # type: ignore[union-attr]
            first = storage.tokens
            assert first is not None
            assert first.expires_in is not None
            browser.landed = None

            clock.ahead = first.expires_in + 1  # for the client, the access token has expired
            after = await client.call_tool("echo", {"text": "after expiry"})
            assert after.content[0].text == "after expiry"  # type: ignore[union-attr]
            second = storage.tokens
            assert second is not None
            assert browser.landed is None  # no new login: the SDK refreshed
            assert second.access_token != first.access_token
            assert second.refresh_token not in (None, first.refresh_token)  # rotated
            renewed, login = _unverified_claims(second.access_token), _unverified_claims(first.access_token)
            assert (renewed["sub"], renewed["tfam"]) == ("alice", login["tfam"])  # from the same login: a refresh

            clock.ahead += (second.expires_in or 0) + 1
            again = await client.call_tool("echo", {"text": "again"})  # the rotated refresh token refreshes in turn
            assert again.content[0].text == "again"  # type: ignore[union-attr]
            assert storage.tokens is not None
            assert storage.tokens.refresh_token not in (first.refresh_token, second.refresh_token)
            assert browser.landed is None
    assert not any("Traceback" in line for line in gw.stderr)
