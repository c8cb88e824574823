"""`hivegate run --auth-server-config`: the official MCP SDK client logs in by itself (discovery → dynamic client
registration → PKCE → consent → login at a real OpenID provider → token) and calls a tool; tokens survive a restart
with persistent keys and SQLite; Cedar policies see the upstream's groups."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import httpx2
import pytest
from joserfc.jwk import ECKey
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from e2e.oidc_provider import OIDCProvider, start_oidc_provider, web_client
from support.backend import free_port
from support.gateway import RunningGateway, fixture_command, hivegate_run
from support.oauth_login import APP_REDIRECT

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@dataclass
class Browser:
    """A headless person: follows redirects with cookies, approves consent pages, stops at the app's redirect."""

    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10))
    landed: dict[str, str] | None = None
    consents: int = 0
    consent_pages: list[str] = field(default_factory=list)

    async def visit(self, url: str) -> None:
        for _ in range(20):
            if url.startswith(APP_REDIRECT):
                self.landed = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
                return
            response = await self.client.get(url)
            if response.status_code == 200 and 'action="/oauth/consent"' in response.text:
                self.consents += 1
                self.consent_pages.append(response.text)
                form = dict(re.findall(r'name="(login|csrf)" value="([^"]*)"', response.text))
                form = {k: unescape(v) for k, v in form.items()}
                base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
                response = await self.client.post(f"{base}/oauth/consent", data={**form, "decision": "allow"})
            assert response.status_code in (302, 303), f"{url}: {response.status_code} {response.text[:300]}"
            url = urljoin(url, response.headers["location"])
        raise AssertionError("too many redirects")

    async def code(self) -> AuthorizationCodeResult:
        assert self.landed is not None, "the login never reached the app"
        assert "error" not in self.landed, self.landed
        return AuthorizationCodeResult(
            code=self.landed["code"], state=self.landed.get("state"), iss=self.landed.get("iss")
        )


class MemoryTokens:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def sdk_client(url: str, browser: Browser, storage: MemoryTokens) -> Client:
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[APP_REDIRECT],  # type: ignore[list-item]
            client_name="e2e agent",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.visit,
        callback_handler=browser.code,
    )
    http = httpx2.AsyncClient(auth=auth, timeout=30)
    return Client(streamable_http_client(url, http_client=http), mode="legacy")


@dataclass
class Setup:
    port: int
    config: Path
    env: dict[str, str]
    idp: OIDCProvider

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def embedded_setup(tmp_path: Path, *, storage: str = "sqlite", extra: str = "") -> AsyncIterator[Setup]:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/oauth/callback"
    (tmp_path / "signing.pem").write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    (tmp_path / "hmac.key").write_text("k" * 40)
    config = tmp_path / "auth-server.yaml"
    config.write_text(
        f"""
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPExternalAuthConfig
metadata:
  name: embedded-auth-server
spec:
  type: embeddedAuthServer
  embeddedAuthServer:
    issuer: 'http://127.0.0.1:{port}'
    signingKeySecretRefs:
      - file: signing.pem
    hmacSecretRefs:
      - name: auth-server-hmac-secret
        key: hmac-key
    tokenLifespans:
      accessTokenLifespan: '1h'
    storage:
      type: {storage}
      sqlite:
        path: {tmp_path / "as.db"}
    upstreamProviders:
      - name: corp
        type: oidc
        oidcConfig:
          issuerUrl: '{{issuer}}'
          clientId: hivegate-as
          clientSecretRef:
            name: upstream-idp-secret
            key: client-secret
          scopes: [openid, profile, email, offline_access]
          additionalAuthorizationParams:
            prompt: consent
{extra}"""
    )
    async with start_oidc_provider(clients=[web_client("hivegate-as", [callback], secret="as-secret")]) as idp:
        config.write_text(config.read_text().replace("{issuer}", idp.issuer))
        env = {
            "HIVEGATE_SECRET_UPSTREAM_IDP_SECRET_CLIENT_SECRET": "as-secret",
            "HIVEGATE_SECRET_AUTH_SERVER_HMAC_SECRET_HMAC_KEY": "h" * 40,
        }
        yield Setup(port, config, env, idp)


def run_args(setup: Setup, *extra: str) -> list[str]:
    return ["--port", str(setup.port), "--auth-server-config", str(setup.config), *extra, *fixture_command()]


async def test_an_sdk_client_logs_in_through_the_embedded_server_and_calls_a_tool(tmp_path: Path) -> None:
    async with (
        embedded_setup(tmp_path) as setup,
        hivegate_run(run_args(setup, "--name", "e2e-tools"), env=setup.env) as gw,
    ):
        browser, storage = Browser(), MemoryTokens()
        async with sdk_client(gw.url, browser, storage) as client:
            result = await client.call_tool("echo", {"text": "logged in"})
            assert result.content[0].text == "logged in"  # type: ignore[union-attr]
        assert browser.consents == 1  # a newly registered client is shown the consent page
        page = browser.consent_pages[0]
        assert f"MCP server: <strong>e2e-tools</strong> at <code>{gw.url}</code>" in page  # what the token is for
        assert "<code>e2e agent</code>" in page  # the client's name
        assert storage.client is not None
        assert storage.tokens is not None
        assert storage.tokens.refresh_token is not None
        claims = _unverified_claims(storage.tokens.access_token)
        assert claims["iss"] == setup.issuer
        assert claims["aud"] == gw.url
        assert claims["sub"] == "alice"
        assert claims["groups"] == ["mcp-developers"]
        assert claims["email"] == "alice@example.com"
        assert claims["client_id"] == storage.client.client_id
        await _check_metadata(gw, setup)


def _unverified_claims(token: str) -> dict[str, Any]:
    import base64
    import json

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def _check_metadata(gw: RunningGateway, setup: Setup) -> None:
    async with httpx.AsyncClient() as http:
        prm = (await http.get(f"{gw.base}/.well-known/oauth-protected-resource/mcp")).json()
        assert prm["authorization_servers"] == [setup.issuer]
        for path in ("/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/mcp"):
            meta = (await http.get(f"{gw.base}{path}")).json()
            assert meta["issuer"] == setup.issuer
            assert meta["code_challenge_methods_supported"] == ["S256"]
        oidc = (await http.get(f"{gw.base}/.well-known/openid-configuration")).json()
        assert oidc["jwks_uri"] == f"{setup.issuer}/.well-known/jwks.json"
        jwks = (await http.get(oidc["jwks_uri"])).json()
        assert len(jwks["keys"]) == 1
        assert jwks["keys"][0]["alg"] == "ES256"


async def test_tokens_survive_a_restart_with_persistent_keys_and_sqlite(tmp_path: Path) -> None:
    async with embedded_setup(tmp_path) as setup:
        browser, storage = Browser(), MemoryTokens()
        async with (
            hivegate_run(run_args(setup), env=setup.env) as gw,
            sdk_client(gw.url, browser, storage) as client,
        ):
            await client.call_tool("echo", {"text": "before"})
        assert storage.tokens is not None
        access, refresh = storage.tokens.access_token, storage.tokens.refresh_token
        async with hivegate_run(run_args(setup), env=setup.env) as gw, httpx.AsyncClient() as http:
            ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            answer = await http.post(gw.url, json=ping, headers={"Authorization": f"Bearer {access}"})
            assert answer.status_code == 400  # authenticated: only the missing session is wrong
            token = await http.post(
                f"{setup.issuer}/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh,
                    "client_id": storage.client.client_id,
                },  # type: ignore[union-attr]
            )
            assert token.status_code == 200, token.text
            assert token.headers["cache-control"] == "no-store"
            assert token.json()["refresh_token"] != refresh


async def test_cedar_policies_see_the_upstream_groups(tmp_path: Path) -> None:
    policies = tmp_path / "authz.json"
    policies.write_text(
        '{"version": "1.0", "type": "cedarv1", "cedar": {"policies": ['
        '"permit(principal in THVGroup::\\"mcp-developers\\", action == Action::\\"call_tool\\", '
        'resource == Tool::\\"echo\\");"]}}'
    )
    async with (
        embedded_setup(tmp_path) as setup,
        hivegate_run(run_args(setup, "--authz-config", str(policies)), env=setup.env) as gw,
        sdk_client(gw.url, Browser(), MemoryTokens()) as client,
    ):
        allowed = await client.call_tool("echo", {"text": "dev"})
        assert allowed.content[0].text == "dev"  # type: ignore[union-attr]
        tools = await client.list_tools()
        assert [t.name for t in tools.tools] == ["echo"]


async def test_oauth_errors_at_the_http_endpoints(tmp_path: Path) -> None:
    async with (
        embedded_setup(tmp_path) as setup,
        hivegate_run(run_args(setup), env=setup.env) as gw,
        httpx.AsyncClient() as http,
    ):
        reg = await http.post(f"{gw.base}/oauth/register", json={"redirect_uris": ["javascript:alert(1)"]})
        assert reg.status_code == 400
        assert reg.json()["error"] == "invalid_redirect_uri"
        bad_json = await http.post(
            f"{gw.base}/oauth/register", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert bad_json.json()["error"] == "invalid_client_metadata"
        ok = await http.post(f"{gw.base}/oauth/register", json={"redirect_uris": [APP_REDIRECT]})
        assert ok.status_code == 201
        client_id = ok.json()["client_id"]
        page = await http.get(f"{gw.base}/oauth/authorize", params={"client_id": "nobody"})
        assert page.status_code == 400
        assert page.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        params: dict[str, Any] = {"client_id": client_id, "redirect_uri": "https://evil.example/cb",
                                  "response_type": "code", "state": "s"}  # fmt: skip
        evil = await http.get(f"{gw.base}/oauth/authorize", params=params)
        assert evil.status_code == 400  # shown, never redirected to the unregistered URI
        assert "location" not in evil.headers
        no_pkce = await http.get(f"{gw.base}/oauth/authorize", params={**params, "redirect_uri": APP_REDIRECT})
        assert no_pkce.status_code == 302
        assert "error=invalid_request" in no_pkce.headers["location"]
        bad_code = {"grant_type": "authorization_code", "client_id": client_id, "code": "hgc_x.y"}
        token = await http.post(f"{gw.base}/oauth/token", data=bad_code)
        assert token.status_code == 400
        assert token.json()["error"] == "invalid_grant"
        assert token.headers["cache-control"] == "no-store"
        not_form = await http.post(f"{gw.base}/oauth/token", json={"grant_type": "password"})
        assert not_form.json()["error"] == "invalid_request"
        basic = await http.post(
            f"{gw.base}/oauth/token", data={"grant_type": "refresh_token"}, auth=("nobody", "secret")
        )
        assert basic.status_code == 401
        assert basic.headers["www-authenticate"].startswith("Basic")
        revoke = await http.post(f"{gw.base}/oauth/revoke", data={"token": "whatever", "client_id": client_id})
        assert revoke.status_code == 200
    assert not any("Traceback" in line for line in gw.stderr)


def test_bad_configs_are_one_line_errors(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "bad.yaml"
    cases = {
        "issuer: 'http://example.com'\nupstreamProviders: []\n": "issuer: http is only allowed on loopback",
        "issuer: 'http://127.0.0.1:1'\nupstreamProviders: []\n": "upstreamProviders: at least one entry is required",
        "issuer: 'http://127.0.0.1:1'\nbogus: 1\nupstreamProviders: [{name: a, type: oidc, oidcConfig: "
        "{issuerUrl: 'http://127.0.0.1:2', clientId: c}}]\n": "bogus: unknown field",
        "issuer: 'http://127.0.0.1:1'\nhmacSecretRefs: [{env: SHORT_KEY}]\nupstreamProviders: [{name: a, type: oidc,"
        " oidcConfig: {issuerUrl: 'http://127.0.0.1:2', clientId: c}}]\n": "at least 32 bytes",
    }
    foreground_run = [sys.executable, "-m", "hivegate", "run", "--foreground"]
    for text, expected in cases.items():
        config.write_text(text)
        done = subprocess.run(
            [*foreground_run, "--auth-server-config", str(config), "--", "true"],
            capture_output=True,
            text=True,
            timeout=30,
            env={"SHORT_KEY": "tooshort", "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert expected in lines[0]
