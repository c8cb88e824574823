"""Kubernetes service-account tokens: an API-server-like issuer over HTTPS with its own CA, whose JWKS needs a token.

No cluster is available here, so a local HTTPS server plays the API server: it publishes its keys at
`/openid/v1/jwks` only to callers that present the gateway's own service-account token, exactly as
`kubernetes.default.svc` does, and its certificate is signed by a CA that only `--ca-bundle` knows.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from support.gateway import fixture_command, hivegate_run
from support.tls import make_ca_and_server_cert
from support.webserver import serve_on_loopback

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

GATEWAY_SA_TOKEN = "gateway-service-account-token"


@asynccontextmanager
async def fake_api_server(tmp_path: Path, key: RSAKey, seen: list[str]) -> AsyncIterator[tuple[str, Path]]:
    ca, cert, cert_key = make_ca_and_server_cert(tmp_path)

    async def jwks(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {GATEWAY_SA_TOKEN}":
            return web.Response(status=401)
        return web.json_response({"keys": [key.as_dict(private=False)]})

    app = web.Application()
    app.router.add_get("/openid/v1/jwks", jwks)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, cert_key)
    async with serve_on_loopback(app, ssl_context=context) as base:
        yield base, ca


def service_account_token(key: RSAKey, issuer: str, audience: str, namespace: str, account: str) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": [audience],
        "sub": f"system:serviceaccount:{namespace}:{account}",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": account, "uid": "1234"}},
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


async def test_service_account_tokens_verified_with_a_private_ca_and_an_authenticated_jwks(tmp_path: Path) -> None:
    """Also the seed's restriction to one service account (`oidcConfig.kubernetes.{namespace, serviceAccount}`,
    here `--oidc-k8s-service-account`): another account of the same cluster is refused, saying which."""
    key = RSAKey.generate_key(2048, parameters={"kid": "sa-key", "alg": "RS256"})
    seen: list[str] = []
    token_file = tmp_path / "token"
    token_file.write_text(GATEWAY_SA_TOKEN)
    async with fake_api_server(tmp_path, key, seen) as (issuer, ca):
        args = [
            "--oidc-issuer", issuer, "--oidc-audience", "toolhive", "--oidc-jwks-url", f"{issuer}/openid/v1/jwks",
            "--jwks-auth-token-file", str(token_file), "--thv-ca-bundle", str(ca), "--jwks-allow-private-ip",
            "--oidc-k8s-service-account", "client-apps/mcp-client", *fixture_command(),
        ]  # fmt: skip
        async with hivegate_run(args) as gw:
            caller = service_account_token(key, issuer, "toolhive", "client-apps", "mcp-client")
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {caller}"})
            async with Client(streamable_http_client(gw.url, http_client=http), mode="legacy") as client:
                result = await client.call_tool("echo", {"text": "from a pod"})
                assert result.content[0].text == "from a pod"  # type: ignore[union-attr]
            other = service_account_token(key, issuer, "another-audience", "client-apps", "mcp-client")
            async with httpx2.AsyncClient() as raw:
                resp = await raw.post(gw.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                      headers={"Authorization": f"Bearer {other}"})  # fmt: skip
                assert resp.status_code == 401
                # the seed's restriction: system:serviceaccount:client-apps:mcp-client only
                intruder = service_account_token(key, issuer, "toolhive", "client-apps", "other-app")
                resp = await raw.post(gw.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                      headers={"Authorization": f"Bearer {intruder}"})  # fmt: skip
                assert resp.status_code == 401
                assert resp.json()["error_description"] == (
                    "Token is for service account client-apps/other-app; only client-apps/mcp-client may call"
                )
    assert seen
    assert all(value == f"Bearer {GATEWAY_SA_TOKEN}" for value in seen)


async def test_without_the_ca_bundle_the_issuer_is_not_trusted(tmp_path: Path) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "sa-key", "alg": "RS256"})
    token_file = tmp_path / "token"
    token_file.write_text(GATEWAY_SA_TOKEN)
    async with fake_api_server(tmp_path, key, []) as (issuer, _ca):
        args = [
            "--oidc-issuer", issuer, "--oidc-audience", "toolhive", "--oidc-jwks-url", f"{issuer}/openid/v1/jwks",
            "--jwks-auth-token-file", str(token_file), "--jwks-allow-private-ip", *fixture_command(),
        ]  # fmt: skip
        async with hivegate_run(args) as gw, httpx2.AsyncClient() as raw:
            caller = service_account_token(key, issuer, "toolhive", "client-apps", "mcp-client")
            resp = await raw.post(gw.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                  headers={"Authorization": f"Bearer {caller}"})  # fmt: skip
            assert resp.status_code == 401
            assert not any(GATEWAY_SA_TOKEN in line or caller in line for line in gw.stderr)
