"""Outgoing authentication end to end, through real processes only (the `003_*` hybrid setup):

    MCP SDK client ──login──▶ gateway A (vMCP, embedded authorization server; upstream: oidc-provider)
        ├─ backend "exchange": gateway B (`hivegate run`, its own authorization server) — A exchanges the caller's
        │  upstream token at B's /oauth/token (RFC 8693) and B accepts only tokens for its own audience
        ├─ backend "inject": gateway C (`hivegate run --oidc-issuer <oidc-provider>`) — A injects the caller's
        │  upstream access token, which C validates against the provider's JWKS
        ├─ backend "recorder": an MCP server that answers with the headers it received (no credentials)
        └─ backends "xspy" (tokenExchange at B for the spy's audience) and "ispy" (upstreamInject): recorders that
           show exactly which token each strategy sends

A's own token never reaches a backend: B and C refuse it (wrong issuer and audience), and the recorder shows what
arrives. The exchanged token is cached: many calls, one exchange."""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from joserfc.jwk import ECKey
from prometheus_client.parser import text_string_to_metric_families

from e2e.oidc_provider import MACHINE_CLIENT, OIDCProvider, start_oidc_provider, web_client
from e2e.test_embedded_auth_server import Browser, MemoryTokens, sdk_client
from support.backend import fixture_http_server, free_port
from support.gateway import FIXTURE, RunningGateway, hivegate_run, hivegate_vmcp

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

UPSTREAM_API = "https://upstream-api.example"  # the audience of the provider's access tokens


def auth_server(
    port: int,
    client: str,
    tmp: Path,
    extra: dict[str, Any] | None = None,
    *,
    offline: bool = True,
    accepted: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An embedded authorization server's config; `accepted`: the audiences of upstream access tokens it exchanges
    besides its own client's."""
    key = tmp / f"{client}-signing.pem"
    key.write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    return {
        "issuer": f"http://127.0.0.1:{port}",
        "signingKeySecretRefs": [{"file": str(key)}],
        "hmacSecretRefs": [{"env": f"E2E_{client.upper().replace('-', '_')}_HMAC"}],
        "storage": {"type": "memory"},
        "upstreamProviders": [
            {
                "name": "corp",
                "type": "oidc",
                "oidcConfig": {
                    "issuerUrl": "{issuer}",
                    "clientId": client,
                    "clientSecretRef": {"env": f"E2E_{client.upper().replace('-', '_')}_SECRET"},
                    "scopes": ["openid", "profile", "email", *(["offline_access"] if offline else [])],
                    **({"tokenExchange": {"acceptedAudiences": list(accepted)}} if accepted else {}),
                },
            }
        ],
        **(extra or {}),
    }


def with_issuer(doc: dict[str, Any], issuer: str) -> str:
    return yaml.safe_dump(doc).replace("'{issuer}'", issuer).replace("{issuer}", issuer)


@dataclass
class World:
    idp: OIDCProvider
    a: RunningGateway
    b: RunningGateway
    c: RunningGateway
    b_metrics: str
    pb: int
    spies: tuple[str, str]


@asynccontextmanager
async def world(tmp_path: Path, *, access_ttl: int = 3600, offline: bool = True) -> AsyncIterator[World]:
    pa, pb, b_diagnostics = free_port(), free_port(), free_port()
    clients = [
        web_client("gateway-a-as", [f"http://127.0.0.1:{pa}/oauth/callback"], secret="a-upstream-secret"),
        web_client("gateway-b-as", [f"http://127.0.0.1:{pb}/oauth/callback"], secret="b-upstream-secret"),
    ]
    env = {
        "E2E_GATEWAY_A_AS_HMAC": "a" * 40,
        "E2E_GATEWAY_A_AS_SECRET": "a-upstream-secret",
        "E2E_GATEWAY_B_AS_HMAC": "b" * 40,
        "E2E_GATEWAY_B_AS_SECRET": "b-upstream-secret",
        "E2E_STS_CLIENT_SECRET": "gateway-a-at-b-secret",
    }
    async with (
        contextlib.AsyncExitStack() as stack,
        start_oidc_provider(clients=clients, default_resource=UPSTREAM_API, access_token_ttl=access_ttl) as idp,
    ):
        b_config = tmp_path / "b-auth.yaml"
        sts_client = {"clientId": "gateway-a", "grantTypes": ["token_exchange"],
                      "clientSecretRef": {"env": "E2E_STS_CLIENT_SECRET"}}  # fmt: skip
        spies = await stack.enter_async_context(_spies())
        audiences = [f"http://127.0.0.1:{pb}/mcp", spies[0]]  # B issues exchanged tokens for itself and a spy
        b_doc = auth_server(pb, "gateway-b-as", tmp_path, {"clients": [sts_client], "allowedAudiences": audiences},
                            accepted=(UPSTREAM_API,))  # A's upstream tokens are for the upstream's API  # fmt: skip
        b_config.write_text(with_issuer(b_doc, idp.issuer))
        b_args = ["--port", str(pb), "--auth-server-config", str(b_config), "--name", "b",
                  "--diagnostics-port", str(b_diagnostics), "--", sys.executable, FIXTURE]  # fmt: skip
        c_args = ["--name", "c", "--oidc-issuer", idp.issuer, "--oidc-audience", UPSTREAM_API,
                  "--oidc-jwks-url", idp.jwks_uri, "--oidc-insecure-allow-http", "--jwks-allow-private-ip",
                  "--", sys.executable, FIXTURE]  # fmt: skip
        async with (
            hivegate_run(b_args, env=env) as b,
            hivegate_run(c_args, env=env) as c,
            fixture_http_server() as recorder,
        ):
            a_doc = {
                "name": "hybrid",
                "server": {"port": pa},
                "authServerConfig": auth_server(pa, "gateway-a-as", tmp_path, offline=offline),
                "incomingAuth": {
                    "type": "oidc",
                    "oidc": {
                        "issuer": f"http://127.0.0.1:{pa}",
                        "audience": f"http://127.0.0.1:{pa}/mcp",
                        "insecureAllowHttp": True,
                    },
                },
                "backends": [
                    {"name": "exchange", "url": b.url, "transport": "streamable-http"},
                    {"name": "inject", "url": c.url, "transport": "streamable-http"},
                    {"name": "recorder", "url": recorder, "transport": "streamable-http"},
                    # header recorders standing where B and C stand: what exactly each strategy sends
                    {"name": "xspy", "url": spies[0], "transport": "streamable-http"},
                    {"name": "ispy", "url": spies[1], "transport": "streamable-http"},
                ],
                "outgoingAuth": {
                    "source": "inline",
                    "default": {"type": "unauthenticated"},
                    "backends": {
                        "exchange": {
                            "type": "tokenExchange",
                            "tokenExchange": {
                                "tokenUrl": f"http://127.0.0.1:{pb}/oauth/token",
                                "clientId": "gateway-a",
                                "clientSecretEnv": "E2E_STS_CLIENT_SECRET",
                                "audience": b.url,
                            },
                        },
                        "inject": {"type": "upstreamInject", "upstreamInject": {"providerName": "corp"}},
                        "xspy": {
                            "type": "tokenExchange",
                            "tokenExchange": {
                                "tokenUrl": f"http://127.0.0.1:{pb}/oauth/token",
                                "clientId": "gateway-a",
                                "clientSecretEnv": "E2E_STS_CLIENT_SECRET",
                                "audience": spies[0],
                            },
                        },
                        "ispy": {"type": "upstreamInject", "upstreamInject": {"providerName": "corp"}},
                    },
                },
            }
            a_config = tmp_path / "a-vmcp.yaml"
            a_config.write_text(with_issuer(a_doc, idp.issuer))
            async with hivegate_vmcp(["--config", str(a_config)], env=env) as a:
                yield World(idp, a, b, c, f"http://127.0.0.1:{b_diagnostics}/metrics", pb, spies)


@asynccontextmanager
async def _spies() -> AsyncIterator[tuple[str, str]]:
    async with fixture_http_server() as exchanged, fixture_http_server() as injected:
        yield exchanged, injected


def claims_of(authorization: str) -> dict[str, Any]:
    """The payload of the JWT in a `Bearer` header (read, not verified: the spy only reports what it got)."""
    scheme, _, token = authorization.partition(" ")
    assert scheme == "Bearer"
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def text(result: Any) -> str:
    assert not result.is_error, result
    return str(result.content[0].text)


async def test_each_backend_gets_its_own_credential_and_never_the_callers_token(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        browser, storage = Browser(), MemoryTokens()
        async with sdk_client(w.a.url, browser, storage) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"exchange_echo", "inject_echo", "recorder_headers"} <= names
            # B accepts only tokens it issued for its own audience: the call works, so A exchanged the token
            assert text(await client.call_tool("exchange_echo", {"text": "via B"})) == "via B"
            # C accepts only the provider's tokens for the upstream API: A injected the caller's upstream token
            assert text(await client.call_tool("inject_echo", {"text": "via C"})) == "via C"
            for i in range(5):
                assert text(await client.call_tool("exchange_echo", {"text": f"again {i}"})) == f"again {i}"
            seen = json.loads(text(await client.call_tool("recorder_headers", {})))
            exchanged = json.loads(text(await client.call_tool("xspy_headers", {})))
            injected = json.loads(text(await client.call_tool("ispy_headers", {})))
        assert storage.tokens is not None
        caller_token = storage.tokens.access_token
        assert "authorization" not in {k.lower() for k in seen}
        for headers in (seen, exchanged, injected):  # in no header, under any strategy
            assert caller_token not in json.dumps(headers)
        caller = claims_of(f"Bearer {caller_token}")
        # tokenExchange: B's token for the spy's audience, acting for the caller
        by_b = claims_of(exchanged["authorization"])
        assert (by_b["iss"], by_b["aud"], by_b["act"]) == (f"http://127.0.0.1:{w.pb}", w.spies[0], {"sub": "gateway-a"})
        # upstreamInject: the upstream provider's own token for its API
        upstream = claims_of(injected["authorization"])
        assert (upstream["iss"], upstream["aud"]) == (w.idp.issuer, UPSTREAM_API)
        assert caller["iss"] != upstream["iss"]
        assert caller["iss"] != by_b["iss"]
        async with httpx.AsyncClient(timeout=10) as http:
            # the caller's own token is useless at B and C: passing it through could never have worked
            init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "x", "version": "1"}}}  # fmt: skip
            for backend in (w.b, w.c):
                headers = {"authorization": f"Bearer {caller_token}", "accept": "application/json, text/event-stream"}
                refused = await http.post(backend.url, json=init, headers=headers)
                assert refused.status_code == 401
            # seven calls through B and one to the spy: one exchange per audience, the tokens are cached
            assert await exchanges_at(http, w.b_metrics) == 2.0
        assert not any(caller_token in line for line in w.a.stderr + w.b.stderr + w.c.stderr)


async def exchanges_at(http: httpx.AsyncClient, metrics_url: str) -> float:
    """How many token exchanges a gateway's authorization server granted (from its Prometheus metrics)."""
    scraped = (await http.get(metrics_url)).text
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            if sample.name == "hivegate_token_grants_total" and sample.labels == {
                "grant_type": "token_exchange",
                "outcome": "success",
            }:
                return sample.value
    return 0.0


async def test_an_expired_upstream_login_makes_the_client_log_in_again(tmp_path: Path) -> None:
    # upstream access tokens that expire at once and no refresh token: the injected credential cannot be had
    async with world(tmp_path, access_ttl=2, offline=False) as w:
        browser, storage = Browser(), MemoryTokens()
        async with sdk_client(w.a.url, browser, storage):
            pass  # logged in and initialized
        assert storage.tokens is not None
        token = storage.tokens.access_token
        async with httpx.AsyncClient(timeout=10) as http:
            headers = {"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"}
            init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "x", "version": "1"}}}  # fmt: skip
            opened = await http.post(w.a.url, json=init, headers=headers)
            session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"]}
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "inject_echo", "arguments": {"text": "x"}}}  # fmt: skip
            answer = await http.post(w.a.url, json=call, headers=session)
            assert answer.status_code == 401
            challenge = answer.headers["www-authenticate"]
            assert challenge.startswith("Bearer ")
            assert 'error="invalid_token"' in challenge
            assert "resource_metadata=" in challenge
            assert "log in again" in answer.json()["error_description"]
            # the gateway's own token is still good: only the upstream login is missing
            ping = await http.post(w.a.url, json={"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers=session)
            assert ping.status_code == 200, ping.text


async def test_hivegate_run_exchanges_the_callers_token_for_its_remote_backend(tmp_path: Path) -> None:
    pb = free_port()
    clients = [MACHINE_CLIENT, web_client("gateway-b-as", [f"http://127.0.0.1:{pb}/oauth/callback"], secret="b-s")]
    secret_file = tmp_path / "sts-secret"
    secret_file.write_text("gateway-a-at-b-secret\n")
    env = {"E2E_GATEWAY_B_AS_HMAC": "b" * 40, "E2E_GATEWAY_B_AS_SECRET": "b-s",
           "E2E_STS_CLIENT_SECRET": "gateway-a-at-b-secret"}  # fmt: skip
    async with start_oidc_provider(clients=clients) as idp:
        sts_client = {"clientId": "gateway-a", "grantTypes": ["token_exchange"],
                      "clientSecretRef": {"env": "E2E_STS_CLIENT_SECRET"}}  # fmt: skip
        b_config = tmp_path / "b-auth.yaml"
        b_config.write_text(
            with_issuer(
                auth_server(pb, "gateway-b-as", tmp_path, {"clients": [sts_client]}, accepted=("https://a.example",)),
                idp.issuer,
            )
        )
        b_args = ["--port", str(pb), "--auth-server-config", str(b_config), "--", sys.executable, FIXTURE]
        async with hivegate_run(b_args, env=env) as b:
            a_args = ["--oidc-issuer", idp.issuer, "--oidc-audience", "https://a.example", "--oidc-jwks-url",
                      idp.jwks_uri, "--oidc-insecure-allow-http", "--jwks-allow-private-ip",
                      "--token-exchange-url", f"http://127.0.0.1:{pb}/oauth/token",
                      "--token-exchange-client-id", "gateway-a",
                      "--token-exchange-client-secret-file", str(secret_file),
                      "--token-exchange-audience", b.url, b.url]  # fmt: skip
            async with hivegate_run(a_args) as a, httpx.AsyncClient(timeout=10) as http:
                token = await idp.client_credentials_token("hivegate-machine", "machine-secret",
                                                           resource="https://a.example")  # fmt: skip
                headers = {"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"}
                init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "x", "version": "1"}}}  # fmt: skip
                opened = await http.post(a.url, json=init, headers=headers)
                assert opened.status_code == 200, opened.text
                session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"],
                           "mcp-protocol-version": "2025-06-18"}  # fmt: skip
                call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": "through B"}}}  # fmt: skip
                answer = await http.post(a.url, json=call, headers=session)
                assert answer.status_code == 200, answer.text
                assert answer.json()["result"]["content"][0]["text"] == "through B"
                # B refuses the caller's own token: only the exchanged one could have worked
                direct = await http.post(b.url, json=init, headers=headers)
                assert direct.status_code == 401
        assert not any(token in line or "gateway-a-at-b-secret" in line for line in a.stderr + b.stderr)
