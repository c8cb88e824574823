"""The test OpenID provider issues tokens a gateway can verify: JWTs for a resource, signed by its JWKS."""

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from e2e.oidc_provider import MACHINE_CLIENT, start_oidc_provider, web_client

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

RESOURCE = "http://127.0.0.1:8080/mcp"
REDIRECT_URI = "http://127.0.0.1:9/callback"


async def test_client_credentials_token_is_a_jwt_for_the_resource() -> None:
    async with start_oidc_provider(clients=[MACHINE_CLIENT]) as provider:
        token = await provider.client_credentials_token(
            "hivegate-machine", "machine-secret", resource=RESOURCE, scope="mcp:tools"
        )
        keys = KeySet.import_key_set(await provider.jwks())  # type: ignore[arg-type]

        decoded = jwt.decode(token, keys, algorithms=["RS256"])

    assert decoded.header["alg"] == "RS256"
    assert decoded.claims["iss"] == provider.issuer
    assert decoded.claims["aud"] == RESOURCE
    assert decoded.claims["client_id"] == "hivegate-machine"
    assert "mcp:tools" in decoded.claims["scope"].split()
    assert "sub" in decoded.claims


async def test_authorization_code_with_pkce_logs_alice_in() -> None:
    client = web_client("hivegate-web", [REDIRECT_URI])
    async with start_oidc_provider(clients=[client]) as provider:
        tokens = await provider.authorization_code_token("hivegate-web", REDIRECT_URI, resource=RESOURCE)
        keys = KeySet.import_key_set(await provider.jwks())  # type: ignore[arg-type]

        access = jwt.decode(tokens["access_token"], keys, algorithms=["RS256"]).claims
        identity = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"]).claims

    assert access["sub"] == "alice"
    assert access["aud"] == RESOURCE
    assert access["groups"] == ["mcp-developers"]
    assert access["email"] == "alice@example.com"
    assert set(access["scope"].split()) >= {"openid", "mcp:tools"}
    assert identity["sub"] == "alice"
    assert identity["aud"] == "hivegate-web"
    assert identity["groups"] == ["mcp-developers"]


async def test_authorization_without_pkce_is_refused() -> None:
    query = {"client_id": "hivegate-web", "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": "openid"}
    client = web_client("hivegate-web", [REDIRECT_URI])
    async with start_oidc_provider(clients=[client]) as provider, httpx.AsyncClient() as http:
        response = await http.get(provider.authorization_endpoint, params=query)

    assert response.status_code == 303
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(REDIRECT_URI)
    assert location.params["error"] == "invalid_request"
    assert "PKCE" in location.params["error_description"]


async def test_opaque_tokens_are_introspected() -> None:
    async with start_oidc_provider(clients=[MACHINE_CLIENT], opaque_resources=[RESOURCE]) as provider:
        token = await provider.client_credentials_token("hivegate-machine", "machine-secret", resource=RESOURCE)
        answer = await provider.introspect(token, "hivegate-machine", "machine-secret")
        garbage = await provider.introspect("not-a-token", "hivegate-machine", "machine-secret")

    assert token.count(".") == 0
    assert answer["active"] is True
    assert answer["aud"] == RESOURCE
    assert answer["client_id"] == "hivegate-machine"
    assert garbage == {"active": False}


async def test_discovery_names_the_endpoints() -> None:
    async with start_oidc_provider() as provider, httpx.AsyncClient() as http:
        metadata = (await http.get(provider.discovery_url)).json()

    assert metadata["issuer"] == provider.issuer
    assert metadata["jwks_uri"] == provider.jwks_uri
    assert metadata["token_endpoint"] == provider.token_endpoint
    assert metadata["introspection_endpoint"] == provider.introspection_endpoint
    assert "S256" in metadata["code_challenge_methods_supported"]
