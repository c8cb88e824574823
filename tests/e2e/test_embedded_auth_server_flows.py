"""`hivegate run --auth-server-config`, the flows around the basic login: two replicas sharing one Redis, several
upstreams chained in one login, a plain OAuth 2.0 upstream with a field mapping, and the security checks of the HTTP
endpoints (code replay, PKCE, redirect URIs, callback replay, cross-browser consent, an upstream that is down, the
registration rate limit). Real processes only: hivegate, oidc-provider (Node), redis-server."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from joserfc.jwk import ECKey
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from redis.asyncio import Redis

from e2e.oidc_provider import DEFAULT_ACCOUNTS, OIDCProvider, start_oidc_provider, web_client
from e2e.test_embedded_auth_server import Browser, MemoryTokens, _unverified_claims, sdk_client
from support.backend import closed_port, free_port
from support.gateway import RunningGateway, fixture_command, hivegate_run
from support.oauth_login import (
    APP_REDIRECT,
    authorize_url,
    consent_form,
    follow,
    login,
    pkce,
    query_of,
    redeem,
    refresh,
    register,
)
from support.redis_server import start_redis

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ENV = {"E2E_AS_HMAC_KEY": "h" * 40, "E2E_IDP_SECRET": "as-secret"}


# -- configuration -----------------------------------------------------------------------------------------------------


def oidc_upstream(name: str, idp: OIDCProvider, **params: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "oidc",
        "oidcConfig": {
            "issuerUrl": idp.issuer,
            "clientId": "hivegate-as",
            "clientSecretRef": {"env": "E2E_IDP_SECRET"},
            "scopes": ["openid", "profile", "email", "offline_access"],
            "additionalAuthorizationParams": {"prompt": "consent", **params},
        },
    }


def write_config(
    directory: Path, issuer: str, upstreams: list[dict[str, Any]], storage: dict[str, Any] | None = None
) -> Path:
    """An `embeddedAuthServer` spec (JSON is YAML) in `directory`, with a signing key file shared by every config
    written there and the HMAC key from `$E2E_AS_HMAC_KEY`."""
    key = directory / "signing.pem"
    if not key.exists():
        key.write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    spec = {
        "issuer": issuer,
        "signingKeySecretRefs": [{"file": "signing.pem"}],
        "hmacSecretRefs": [{"env": "E2E_AS_HMAC_KEY"}],
        "storage": storage or {"type": "memory"},
        "upstreamProviders": upstreams,
    }
    path = directory / f"auth-server-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(spec))
    return path


def gateway_args(port: int, config: Path, *extra: str) -> list[str]:
    return ["--port", str(port), "--auth-server-config", str(config), *extra, *fixture_command()]


def callback(port: int) -> str:
    return f"http://127.0.0.1:{port}/oauth/callback"


# -- a client speaking raw HTTP: support.oauth_login ---------------------------------------------------------------


def refused(response: httpx.Response, error: str, description: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error, response.text
    assert description in response.json()["error_description"], response.text


async def echo(url: str, access_token: str, text: str) -> str:
    """Call the fixture's echo tool at `url` with a bearer token (an MCP session of its own)."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {access_token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool("echo", {"text": text})
    return str(result.content[0].text)  # type: ignore[union-attr]


async def ping_status(http: httpx.AsyncClient, url: str, access_token: str) -> int:
    """The HTTP status of an `initialize` sent with `access_token` (401 once the token is refused)."""
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json, text/event-stream"}
    return (await http.post(url, json=body, headers=headers)).status_code


async def refused_within(http: httpx.AsyncClient, url: str, access_token: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (status := await ping_status(http, url, access_token)) != 401:
        assert status == 200
        assert time.monotonic() < deadline, "the revoked access token is still accepted"
        await asyncio.sleep(0.25)


def no_traceback(*gateways: RunningGateway) -> None:
    for gw in gateways:
        assert not any("Traceback" in line for line in gw.stderr), "\n".join(gw.stderr[-30:])


# -- 1. two replicas sharing Redis -------------------------------------------------------------------------------------


async def test_two_replicas_sharing_redis_honour_each_others_tokens(tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    issuer, resource = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_a}/mcp"
    async with AsyncExitStack() as stack:
        redis = await stack.enter_async_context(start_redis())
        idp = await stack.enter_async_context(
            start_oidc_provider(clients=[web_client("hivegate-as", [callback(port_a)], secret="as-secret")])
        )
        # one config for both replicas, as behind a load balancer: issuer, keys and store are shared
        storage = {"type": "redis", "redis": {"url": redis.url, "keyPrefix": "e2e:as:"}}
        config = write_config(tmp_path, issuer, [oidc_upstream("corp", idp)], storage)
        a = await stack.enter_async_context(
            hivegate_run(gateway_args(port_a, config, "--resource-url", resource), env=ENV)
        )
        b = await stack.enter_async_context(
            hivegate_run(gateway_args(port_b, config, "--resource-url", resource), env=ENV)
        )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))

        browser, storage_a = Browser(), MemoryTokens()
        async with sdk_client(a.url, browser, storage_a) as client:
            assert (await client.call_tool("echo", {"text": "via a"})).content[0].text == "via a"  # type: ignore[union-attr]
        assert storage_a.tokens is not None
        assert storage_a.client is not None
        client_id = storage_a.client.client_id
        access, first_refresh = storage_a.tokens.access_token, storage_a.tokens.refresh_token
        assert first_refresh is not None
        assert _unverified_claims(access)["aud"] == resource

        kept = Redis.from_url(redis.url)
        try:
            namespaces = {key.decode().split(":")[2] for key in await kept.keys("e2e:as:*")}
        finally:
            await kept.aclose()
        assert {"client", "session", "refresh", "code-used"} <= namespaces

        # (a) B accepts the access token A issued, and B's metadata names the same issuer and keys
        unauthenticated = await http.post(b.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert unauthenticated.status_code == 401
        assert await echo(b.url, access, "via b") == "via b"
        meta_a = (await http.get(f"{a.base}/.well-known/oauth-authorization-server")).json()
        meta_b = (await http.get(f"{b.base}/.well-known/oauth-authorization-server")).json()
        assert meta_a == meta_b
        jwks_a = (await http.get(f"{a.base}/.well-known/jwks.json")).json()
        assert (await http.get(f"{b.base}/.well-known/jwks.json")).json() == jwks_a

        # (b) B redeems the refresh token A issued; the rotated one works at A, and B's access token at A
        at_b = await refresh(http, b.base, client_id, first_refresh)
        assert at_b.status_code == 200, at_b.text
        rotated = at_b.json()["refresh_token"]
        assert rotated != first_refresh
        assert _unverified_claims(at_b.json()["access_token"])["iss"] == issuer
        assert await echo(a.url, at_b.json()["access_token"], "b's token at a") == "b's token at a"
        at_a = await refresh(http, a.base, client_id, rotated)
        assert at_a.status_code == 200, at_a.text
        current = at_a.json()["refresh_token"]

        # (c) one refresh token presented to both replicas at once (within the grace window): both succeed, with the
        # one successor (the chain does not fork)
        both = await asyncio.gather(
            refresh(http, a.base, client_id, current), refresh(http, b.base, client_id, current)
        )
        assert [r.status_code for r in both] == [200, 200], [r.text for r in both]
        from_a, from_b = (r.json()["refresh_token"] for r in both)
        assert from_a == from_b != current

        # revoking at A ends the whole family: the sibling minted by B is refused on both replicas, as is the revoked
        revoked = await http.post(f"{a.base}/oauth/revoke", data={"token": from_a, "client_id": client_id})
        assert revoked.status_code == 200
        refused(await refresh(http, b.base, client_id, from_b), "invalid_grant", "revoked")
        refused(await refresh(http, b.base, client_id, from_a), "invalid_grant", "revoked")
        refused(await refresh(http, a.base, client_id, from_b), "invalid_grant", "revoked")
        # and its access tokens: at once where it was revoked, within RECHECK (5 s) at the other replica
        family_access = both[1].json()["access_token"]
        assert await ping_status(http, a.url, family_access) == 401
        await refused_within(http, b.url, family_access, 10)
        await refused_within(http, b.url, access, 10)  # the family's first token, accepted by B before
        no_traceback(a, b)


# -- 2. two upstreams chained ------------------------------------------------------------------------------------------


GITHUB_LIKE_ACCOUNTS = {
    # the same person as corp's alice (emails compare case-insensitively), under another subject
    "alice-gh": {"email": "Alice@Example.COM", "email_verified": True, "name": "alice on github"},
    "bob": {"email": "bob@example.com", "email_verified": True, "name": "Bob"},
}


async def test_two_upstreams_are_visited_in_order_and_must_be_the_same_person(tmp_path: Path) -> None:
    port, port_other = free_port(), free_port()
    redirects = [callback(port), callback(port_other)]
    async with (
        start_oidc_provider(clients=[web_client("hivegate-as", redirects, secret="as-secret")]) as corp,
        start_oidc_provider(
            clients=[web_client("hivegate-as", redirects, secret="as-secret")],
            accounts=GITHUB_LIKE_ACCOUNTS,
            login_account="alice-gh",
        ) as github,
    ):
        chained = [oidc_upstream("corp", corp), oidc_upstream("github-like", github)]
        config = write_config(tmp_path, f"http://127.0.0.1:{port}", chained)
        visited: list[str] = []

        async def record(request: httpx.Request) -> None:
            visited.append(str(request.url))

        async with (
            hivegate_run(gateway_args(port, config), env=ENV) as gw,
            httpx.AsyncClient(timeout=10, event_hooks={"request": [record]}) as http,
        ):
            storage = MemoryTokens()
            browser = Browser(client=http)
            async with sdk_client(gw.url, browser, storage) as client:
                assert (await client.call_tool("echo", {"text": "chained"})).content[0].text == "chained"  # type: ignore[union-attr]
            no_traceback(gw)
        assert browser.consents == 1
        steps = [f"{corp.issuer}/auth", f"{github.issuer}/auth", callback(port)]
        assert [u.split("?")[0] for u in visited if u.split("?")[0] in steps] == [
            steps[0],
            steps[2],
            steps[1],
            steps[2],
        ]
        assert storage.tokens is not None
        claims = _unverified_claims(storage.tokens.access_token)
        assert claims["sub"] == "alice"  # who the first upstream says
        assert claims["email"] == DEFAULT_ACCOUNTS["alice"]["email"]
        assert claims["groups"] == ["mcp-developers"]

        # the second upstream signs in someone else: the login ends with access_denied at the client
        other = [chained[0], oidc_upstream("github-like", github, login_hint="bob")]
        config = write_config(tmp_path, f"http://127.0.0.1:{port_other}", other)
        async with (
            hivegate_run(gateway_args(port_other, config), env=ENV) as gw,
            httpx.AsyncClient(timeout=10) as http,
        ):
            client_id = (await register(http, gw.base)).json()["client_id"]
            _, challenge = pkce()
            browser = Browser()
            await browser.visit(authorize_url(gw.base, client_id, challenge, "st-1"))
            assert browser.landed is not None
            assert browser.landed["error"] == "access_denied"
            assert browser.landed["error_description"] == "github-like: signed in as a different user"
            assert browser.landed["state"] == "st-1"
            assert browser.landed["iss"] == f"http://127.0.0.1:{port_other}"
            assert "code" not in browser.landed
            no_traceback(gw)


# -- 3. a plain OAuth 2.0 upstream -------------------------------------------------------------------------------------


async def test_an_oauth2_upstream_with_a_field_mapping(tmp_path: Path) -> None:
    port = free_port()
    upstream_client = {**web_client("hivegate-as", [callback(port)], secret="as-secret"),
                       "token_endpoint_auth_method": "client_secret_post"}  # fmt: skip
    async with start_oidc_provider(clients=[upstream_client]) as idp:
        oauth2 = {
            "name": "github-like",
            "type": "oauth2",
            "oauth2Config": {
                "clientId": "hivegate-as",
                "clientSecretRef": {"env": "E2E_IDP_SECRET"},
                "authorizationEndpoint": idp.authorization_endpoint,
                "tokenEndpoint": idp.token_endpoint,
                "scopes": ["openid", "profile", "email"],
                "userInfo": {
                    "endpointUrl": idp.userinfo_endpoint,
                    "fieldMapping": {"subjectFields": ["login", "email"], "nameFields": ["name"]},
                },
            },
        }
        config = write_config(tmp_path, f"http://127.0.0.1:{port}", [oauth2])
        async with hivegate_run(gateway_args(port, config), env=ENV) as gw:
            storage = MemoryTokens()
            async with sdk_client(gw.url, Browser(), storage) as client:
                assert (await client.call_tool("echo", {"text": "oauth2"})).content[0].text == "oauth2"  # type: ignore[union-attr]
            no_traceback(gw)
    assert storage.tokens is not None
    claims = _unverified_claims(storage.tokens.access_token)
    assert claims["sub"] == "alice@example.com"  # no `login` at userinfo: the next subject field, `email`
    assert claims["name"] == "Alice Example"
    assert claims["groups"] == ["mcp-developers"]


# -- 4. security checks at the HTTP endpoints --------------------------------------------------------------------------


async def test_security_checks_at_the_http_endpoints(tmp_path: Path) -> None:
    port = free_port()
    async with (
        start_oidc_provider(clients=[web_client("hivegate-as", [callback(port)], secret="as-secret")]) as idp,
    ):
        config = write_config(tmp_path, f"http://127.0.0.1:{port}", [oidc_upstream("corp", idp)])
        async with hivegate_run(gateway_args(port, config), env=ENV) as gw, httpx.AsyncClient(timeout=10) as http:
            base = gw.base

            # registration is rate limited per address: a burst of 5, then 429 with Retry-After
            burst = [await register(http, base) for _ in range(6)]
            assert [r.status_code for r in burst] == [201] * 5 + [429], [r.text for r in burst]
            assert burst[5].json()["error"] == "invalid_request"
            assert 1 <= int(burst[5].headers["retry-after"]) <= 2
            client_id = burst[0].json()["client_id"]

            # PKCE: S256 only; `plain` (or no method, which means plain) is refused back to the client
            verifier, challenge = pkce()
            for method in ("plain", ""):
                url = authorize_url(base, client_id, verifier[:43], "st-p", code_challenge_method=method)
                answer = await http.get(url)
                assert answer.status_code == 302
                assert answer.headers["location"].startswith(APP_REDIRECT)
                landed = query_of(answer.headers["location"])
                assert landed["error"] == "invalid_request"
                assert "S256" in landed["error_description"]
                assert landed["state"] == "st-p"

            # the consent form only counts from the browser it was shown to
            async with (
                httpx.AsyncClient(timeout=10) as victim,
                httpx.AsyncClient(timeout=10) as stranger,
                httpx.AsyncClient(timeout=10) as attacker,
            ):
                page = await victim.get(authorize_url(base, client_id, challenge, "st-c"))
                assert page.status_code == 200
                form = {**consent_form(page.text), "decision": "allow"}
                # the attacker has a login cookie of its own; the stranger has none
                assert (await attacker.get(authorize_url(base, client_id, challenge, "x"))).status_code == 200
                assert attacker.cookies.get("hivegate_login")
                for other in (stranger, attacker):
                    forged = await other.post(f"{base}/oauth/consent", data=form)
                    assert forged.status_code == 403
                    assert forged.headers["content-type"].startswith("text/html")
                    assert "location" not in forged.headers
                    assert "not shown in this browser" in forged.text
                allowed = await victim.post(f"{base}/oauth/consent", data=form)
                assert allowed.status_code == 302
                assert allowed.headers["location"].startswith(f"{idp.issuer}/auth")
                landed = query_of(await follow(victim, allowed.headers["location"], until=APP_REDIRECT))
            code = landed["code"]

            # a code is redeemed once; a replay fails and revokes what the first redemption issued
            first = await redeem(http, base, client_id, code, verifier)
            assert first.status_code == 200, first.text
            refused(await redeem(http, base, client_id, code, verifier), "invalid_grant", "already used")
            refused(await refresh(http, base, client_id, first.json()["refresh_token"]), "invalid_grant", "revoked")
            assert await ping_status(http, gw.url, first.json()["access_token"]) == 401

            # the token request must prove the login's verifier and repeat its redirect URI
            code, verifier = await login(base, client_id)
            wrong = pkce()[0]
            refused(await redeem(http, base, client_id, code, wrong), "invalid_grant", "code_verifier")
            other_uri = "http://127.0.0.1:9/elsewhere"
            refused(await redeem(http, base, client_id, code, verifier, other_uri), "invalid_grant", "redirect_uri")

            # an upstream callback is used once: replayed (same state, same browser) it shows an error page
            verifier, challenge = pkce()
            async with httpx.AsyncClient(timeout=10) as browser:
                url = authorize_url(base, client_id, challenge, "st-r")
                back = await follow(browser, url, until=callback(port))
                done = await browser.get(back)
                assert done.status_code == 302
                assert done.headers["location"].startswith(APP_REDIRECT)
                replay = await browser.get(back)
                assert replay.status_code == 400
                assert replay.headers["content-type"].startswith("text/html")
                assert "location" not in replay.headers
                assert "already used" in replay.text
            good = await redeem(http, base, client_id, query_of(done.headers["location"])["code"], verifier)
            assert good.status_code == 200, good.text

            # a callback completed in another browser is refused
            async with httpx.AsyncClient(timeout=10) as browser:
                back = await follow(browser, authorize_url(base, client_id, challenge, "st-x"), until=callback(port))
            elsewhere = await http.get(back)
            assert elsewhere.status_code == 403
            assert "location" not in elsewhere.headers
            assert "another browser" in elsewhere.text

            # the upstream goes down between its login and our callback: the client hears why, with its state
            async with httpx.AsyncClient(timeout=10) as browser:
                back = await follow(browser, authorize_url(base, client_id, challenge, "st-d"), until=callback(port))
                idp.process.terminate()
                await idp.process.wait()
                down = await browser.get(back)
            assert down.status_code == 302
            assert down.headers["location"].startswith(APP_REDIRECT)
            landed = query_of(down.headers["location"])
            assert landed["error"] == "temporarily_unavailable"
            assert landed["error_description"] == "corp: cannot reach the token endpoint"
            assert landed["state"] == "st-d"

            # ... and the gateway goes on serving everything that does not need the upstream
            assert (await http.get(f"{base}/.well-known/oauth-authorization-server")).status_code == 200
            renewed = await refresh(http, base, client_id, good.json()["refresh_token"])
            assert renewed.status_code == 200, renewed.text
            assert await echo(gw.url, renewed.json()["access_token"], "still up") == "still up"
            no_traceback(gw)


async def test_an_unreachable_upstream_is_reported_to_the_client(tmp_path: Path) -> None:
    port, closed = free_port(), closed_port()
    upstream = {
        "name": "corp",
        "type": "oidc",
        "oidcConfig": {"issuerUrl": f"http://127.0.0.1:{closed}", "clientId": "hivegate-as"},
    }
    config = write_config(tmp_path, f"http://127.0.0.1:{port}", [upstream])
    async with hivegate_run(gateway_args(port, config), env=ENV) as gw, httpx.AsyncClient(timeout=10) as http:
        client_id = (await register(http, gw.base)).json()["client_id"]
        _, challenge = pkce()
        page = await http.get(authorize_url(gw.base, client_id, challenge, "st-u"))
        assert page.status_code == 200  # the consent page: nothing asked of the upstream yet
        answer = await http.post(f"{gw.base}/oauth/consent", data={**consent_form(page.text), "decision": "allow"})
        assert answer.status_code == 302, answer.text
        landed = query_of(answer.headers["location"])
        assert answer.headers["location"].startswith(APP_REDIRECT)
        assert landed["error"] == "temporarily_unavailable"
        assert landed["error_description"].startswith("corp: ")
        assert landed["state"] == "st-u"
        assert (await http.get(f"{gw.base}/.well-known/oauth-authorization-server")).status_code == 200
        no_traceback(gw)
