"""`hivegate run` against a real OpenID provider (npm `oidc-provider`): discovery, JWKS, JWT and introspection."""

from __future__ import annotations

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from e2e.oidc_provider import MACHINE_CLIENT, start_oidc_provider, web_client
from support.backend import free_port
from support.gateway import fixture_command, hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

REDIRECT_URI = "http://127.0.0.1:9/callback"


def _client(url: str, token: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http), mode="legacy")


async def test_a_user_logged_in_at_the_idp_calls_a_tool_through_the_gateway() -> None:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    async with start_oidc_provider(clients=[web_client("mcp-client", [REDIRECT_URI])]) as idp:
        args = [
            "--port", str(port), "--oidc-issuer", idp.issuer, "--oidc-audience", resource, "--resource-url", resource,
            "--oidc-insecure-allow-http", "--jwks-allow-private-ip", *fixture_command(),
        ]  # fmt: skip
        async with hivegate_run(args) as gw:
            assert gw.url == resource
            tokens = await idp.authorization_code_token("mcp-client", REDIRECT_URI, resource=resource)
            async with _client(gw.url, tokens["access_token"]) as client:
                result = await client.call_tool("echo", {"text": "from alice"})
                assert result.content[0].text == "from alice"  # type: ignore[union-attr]
            # the ID token is for the client, not for this server: its audience is the client id
            async with httpx.AsyncClient() as http:
                resp = await http.post(
                    gw.url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={"Authorization": f"Bearer {tokens['id_token']}"},
                )
                assert resp.status_code == 401
                assert 'error="invalid_token"' in resp.headers["www-authenticate"]
                prm = (await http.get(f"{gw.base}/.well-known/oauth-protected-resource/mcp")).json()
                assert prm["authorization_servers"] == [idp.issuer]
                assert prm["resource"] == resource


@pytest.mark.parametrize("discovered", [False, True], ids=["introspection-url", "from-discovery"])
async def test_opaque_tokens_are_checked_by_introspection_at_the_idp(discovered: bool) -> None:
    """With `--oidc-introspection-url`, or (as in the seeds' `clientId` + `clientSecretRef` example) with only the
    client's credentials: the endpoint then comes from the issuer's discovery document."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    clients = [MACHINE_CLIENT, web_client("mcp-client", [REDIRECT_URI])]
    async with start_oidc_provider(clients=clients, opaque_resources=[resource]) as idp:
        where = [] if discovered else ["--oidc-introspection-url", idp.introspection_endpoint]
        args = [
            "--port", str(port), "--oidc-issuer", idp.issuer, "--oidc-audience", resource, *where,
            "--oidc-client-id", "hivegate-machine",
            "--oidc-insecure-allow-http", "--jwks-allow-private-ip", *fixture_command(),
        ]  # fmt: skip
        async with hivegate_run(args, env={"HIVEGATE_OIDC_CLIENT_SECRET": "machine-secret"}) as gw:
            tokens = await idp.authorization_code_token("mcp-client", REDIRECT_URI, resource=resource)
            token = tokens["access_token"]
            assert token.count(".") != 2  # opaque, not a JWT
            async with _client(gw.url, token) as client:
                result = await client.call_tool("echo", {"text": "introspected"})
                assert result.content[0].text == "introspected"  # type: ignore[union-attr]
            async with httpx.AsyncClient() as http:
                ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
                resp = await http.post(gw.url, json=ping, headers={"Authorization": "Bearer nope"})
                assert resp.status_code == 401
                # a token without a subject (client credentials) is refused, as in ToolHive
                machine = await idp.client_credentials_token("hivegate-machine", "machine-secret", resource=resource)
                resp = await http.post(gw.url, json=ping, headers={"Authorization": f"Bearer {machine}"})
                assert resp.status_code == 401
                assert resp.json()["error_description"] == "Invalid authentication claims"
