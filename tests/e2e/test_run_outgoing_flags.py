"""`hivegate run`'s outgoing credentials end to end, through real processes only:

- header injection (`--remote-forward-headers`, `--remote-forward-headers-secret`): a remote MCP server that answers
  with the headers it received gets the configured headers, and never the caller's token; no secret is ever logged;
- `--upstream-inject PROVIDER` (with `--auth-server-config`): the remote server gets the caller's access token from
  the upstream identity provider (oidc-provider), and a caller whose upstream login has expired gets `401` with a
  `WWW-Authenticate` challenge;
- misuse of these flags: one line naming the flag, exit code 2, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from e2e.oidc_provider import OIDCProvider, start_oidc_provider, web_client
from e2e.test_outgoing_auth import UPSTREAM_API, auth_server, claims_of, with_issuer
from support.backend import fixture_http_server, free_port
from support.gateway import RunningGateway, hivegate_run
from support.issuer import local_issuer
from support.oauth_login import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AUDIENCE = "run-outgoing"
CLIENT = {"name": "x", "version": "1"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": CLIENT}}  # fmt: skip
ACCEPT = "application/json, text/event-stream"


async def seen_headers(url: str, token: str) -> dict[str, str]:
    """The headers the fixture's `headers` tool reports, called through `url` with `token` (lower-cased names)."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool("headers", {})
    assert not result.is_error, result
    seen: dict[str, str] = json.loads(result.content[0].text)  # type: ignore[union-attr]
    return {k.lower(): v for k, v in seen.items()}


# -- header injection ------------------------------------------------------------------------------------------------


async def test_forwarded_headers_reach_the_remote_server_and_the_callers_token_never_does(tmp_path: Path) -> None:
    key_file = tmp_path / "backend-authorization"
    key_file.write_text("Bearer backend-file-secret-5678\n")
    env = {"E2E_API_KEY": "backend-env-secret-1234", "HIVEGATE_SECRET_TEAM_KEY": "backend-named-secret-9012"}
    async with local_issuer() as issuer, fixture_http_server() as backend:
        args = ["--oidc-issuer", issuer.url, "--oidc-audience", AUDIENCE, "--oidc-jwks-url", issuer.jwks_url,
                "--oidc-insecure-allow-http", "--jwks-allow-private-ip", "--log-level", "debug",
                "--remote-forward-headers", "X-Tenant=acme",
                "--remote-forward-headers-secret", "X-Api-Key=env:E2E_API_KEY",
                "--remote-forward-headers-secret", f"Authorization=file:{key_file}",
                "--remote-forward-headers-secret", "X-Team-Key=team-key",
                backend]  # fmt: skip
        token = issuer.token(AUDIENCE, sub="alice")
        async with hivegate_run(args, env=env) as gw:
            seen = await seen_headers(gw.url, token)
            assert seen["x-tenant"] == "acme"
            assert seen["x-api-key"] == "backend-env-secret-1234"
            assert seen["authorization"] == "Bearer backend-file-secret-5678"  # the gateway's, not the caller's
            assert seen["x-team-key"] == "backend-named-secret-9012"
            assert token not in json.dumps(seen)
            async with httpx.AsyncClient(timeout=10) as http:  # the gateway still authenticates its callers
                anonymous = await http.post(gw.url, json=INIT, headers={"accept": ACCEPT})
                assert anonymous.status_code == 401
    logged = "\n".join(gw.stderr)
    for secret in ("backend-env-secret-1234", "backend-file-secret-5678", "backend-named-secret-9012", token):
        assert secret not in logged
    assert "Traceback" not in logged


# -- upstream inject ---------------------------------------------------------------------------------------------------


@asynccontextmanager
async def upstream_inject_gateway(
    tmp_path: Path, *, access_ttl: int = 3600, offline: bool = True
) -> AsyncIterator[tuple[OIDCProvider, RunningGateway, str]]:
    """oidc-provider as the upstream, `hivegate run --auth-server-config … --upstream-inject corp` in front of a header
    recorder; yields (provider, gateway, a gateway access token of a user who logged in upstream)."""
    port = free_port()
    client = web_client("run-inject-as", [f"http://127.0.0.1:{port}/oauth/callback"], secret="inject-upstream-secret")
    env = {"E2E_RUN_INJECT_AS_HMAC": "i" * 40, "E2E_RUN_INJECT_AS_SECRET": "inject-upstream-secret"}
    async with (
        start_oidc_provider(clients=[client], default_resource=UPSTREAM_API, access_token_ttl=access_ttl) as idp,
        fixture_http_server() as backend,
    ):
        config = tmp_path / "as.yaml"
        config.write_text(with_issuer(auth_server(port, "run-inject-as", tmp_path, offline=offline), idp.issuer))
        args = ["--port", str(port), "--auth-server-config", str(config), "--upstream-inject", "corp", backend]
        async with hivegate_run(args, env=env) as gw, httpx.AsyncClient(timeout=10) as http:
            _, tokens = await log_in(http, f"http://127.0.0.1:{port}")
            yield idp, gw, tokens["access_token"]


async def test_upstream_inject_sends_the_callers_upstream_token_and_never_the_gateways(tmp_path: Path) -> None:
    async with upstream_inject_gateway(tmp_path) as (idp, gw, token):
        seen = await seen_headers(gw.url, token)
    upstream = claims_of(seen["authorization"])
    assert (upstream["iss"], upstream["aud"]) == (idp.issuer, UPSTREAM_API)  # the provider's own token for its API
    assert claims_of(f"Bearer {token}")["iss"] != idp.issuer
    assert token not in json.dumps(seen)
    assert not any(token in line or "Traceback" in line for line in gw.stderr)


async def test_an_expired_upstream_login_is_a_401_challenge(tmp_path: Path) -> None:
    # upstream access tokens that expire at once and no refresh token: the injected credential cannot be had
    async with (
        upstream_inject_gateway(tmp_path, access_ttl=2, offline=False) as (_, gw, token),
        httpx.AsyncClient(timeout=10) as http,
    ):
        answer = await http.post(gw.url, json=INIT, headers={"authorization": f"Bearer {token}", "accept": ACCEPT})
        assert answer.status_code == 401, answer.text
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        assert 'error="invalid_token"' in challenge
        assert "resource_metadata=" in challenge
        assert "log in again" in answer.json()["error_description"]
    assert not any(token in line or "Traceback" in line for line in gw.stderr)


# -- misuse ------------------------------------------------------------------------------------------------------------

REMOTE = "https://mcp.example.com/mcp"


def hivegate(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hivegate", *argv], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})})  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--remote-forward-headers", "X-Key", REMOTE], "--remote-forward-headers: expected NAME=VALUE"),
        (["--remote-forward-headers", "Host=evil", REMOTE], "--remote-forward-headers: the Host header cannot be set"),
        (["--remote-forward-headers-secret", "X-Key=env:E2E_UNSET_VARIABLE", REMOTE],
         "--remote-forward-headers-secret X-Key: environment variable E2E_UNSET_VARIABLE is not set"),
        (["--remote-forward-headers", "X-Key=1", "--", "server-bin"],
         "--remote-forward-headers: a stdio server has no HTTP requests to authenticate"),
        (["--remote-forward-headers", "X-Key=1", "--upstream-inject", "corp", REMOTE],
         "--upstream-inject cannot be combined with --remote-forward-headers"),
        (["--upstream-inject", "corp", "--token-exchange-url", "https://sts.example.com", REMOTE],
         "--token-exchange-url cannot be combined with --upstream-inject"),
        (["--upstream-inject", "corp", REMOTE], "--upstream-inject needs --auth-server-config"),
        (["--oidc-issuer", "https://idp.example", "--oidc-audience", "a", "--token-exchange-url",
          "https://sts.example.com", "--token-exchange-subject-provider", "corp", REMOTE],
         "--token-exchange-subject-provider needs --auth-server-config"),
        (["--anonymous", "--token-exchange-url", "https://sts.example.com", REMOTE],
         "--token-exchange-url: the caller's token is the subject of the exchange, and --anonymous accepts callers"),
    ],
)  # fmt: skip
def test_bad_outgoing_flags_are_one_line_errors_with_exit_code_2(argv: list[str], needle: str) -> None:
    proc = hivegate("run", *argv)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert lines[0].startswith("hivegate run: error: ")
    assert "Traceback" not in proc.stderr


def test_a_secret_value_never_appears_in_an_error() -> None:
    proc = hivegate("run", "--remote-forward-headers-secret", "X-Key=env:E2E_TWO_LINES", REMOTE,
                    env={"E2E_TWO_LINES": "s3cret-one\ns3cret-two"})  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "hivegate run: error: --remote-forward-headers-secret: the value of X-Key must be printable ASCII on one line"
    )


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--upstream-inject", "entra"],
         "--upstream-inject: --auth-server-config has no upstream provider 'entra' (configured: corp)"),
        (["--token-exchange-url", "https://sts.example.com/token", "--token-exchange-subject-provider", "entra"],
         "--token-exchange-subject-provider: upstream provider 'entra' is not configured (configured: corp)"),
    ],
)  # fmt: skip
def test_an_upstream_provider_the_authorization_server_lacks_stops_start_up(
    tmp_path: Path, flags: list[str], needle: str
) -> None:
    port = free_port()
    config = tmp_path / "as.yaml"
    config.write_text(with_issuer(auth_server(port, "unused-as", tmp_path), "http://127.0.0.1:1"))
    env = {"E2E_UNUSED_AS_HMAC": "u" * 40, "E2E_UNUSED_AS_SECRET": "s"}
    proc = hivegate("run", "--foreground", "--port", str(port), "--auth-server-config", str(config), *flags, REMOTE,
                    env=env)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"hivegate run: error: {needle}"], proc.stderr
