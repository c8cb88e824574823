"""Protected dynamic client registration (RFC 7591 section 3, initial access tokens): the config section, and
`POST /oauth/register` as a client meets it (in process, over ASGI), with the server's own token verification."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web
from client_registry_support import DocumentServer

from hivegate.asgi.authserver import AuthServerRoutes
from hivegate.asgi.types import Receive, Scope, Send
from hivegate.authserver.build import EmbeddedAuthServer, embedded_auth_server
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.registration import ClientRegistry
from hivegate.authserver.registration_access import RegistrationAccess
from hivegate.authserver.secrets import SecretResolver
from hivegate.authserver.service import AuthorizationServer
from hivegate.authserver.settings import AuthServerConfig, RegistrationConfig, parse_auth_server_config
from hivegate.errors import ConfigError
from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.storage.memory import MemoryStore

ISSUER = "http://127.0.0.1:8080"
RESOURCE = f"{ISSUER}/mcp"
UPSTREAM = {"name": "okta", "type": "oidc", "oidcConfig": {"clientId": "c", "issuerUrl": "https://idp.example.com"}}
TOKEN = "iat-" + "a" * 40
OLD_TOKEN = "iat-" + "b" * 40
Endpoint = tuple[httpx.AsyncClient, EmbeddedAuthServer]
APP = "http://127.0.0.1:9/cb"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 appendix B
METADATA = {"redirect_uris": [APP], "token_endpoint_auth_method": "none"}


def parse(registration: Any, **spec: Any) -> AuthServerConfig:
    body = {"issuer": ISSUER, "upstreamProviders": [UPSTREAM], "storage": {"type": "memory"},
            "registration": registration, **spec}  # fmt: skip
    env = {"IAT": TOKEN, "IAT_OLD": OLD_TOKEN, "SHORT": "x" * 31, "SPACES": "a b " + "c" * 40}
    return parse_auth_server_config(body, resolver=SecretResolver(environ=env))


# -- configuration -----------------------------------------------------------------------------------------------------


def test_initial_access_tokens_and_the_registration_scope_are_read_from_the_config() -> None:
    cfg = parse(
        {"initialAccessTokenSecretRefs": [{"env": "IAT"}, {"env": "IAT_OLD"}], "allowRegistrationScope": True},
        scopesSupported=["openid", "client:register"],
    )
    assert cfg.registration == RegistrationConfig((TOKEN, OLD_TOKEN), True)
    assert cfg.registration.protected
    assert TOKEN not in repr(cfg)  # the secret never shows in a log line that prints the config
    assert not parse_auth_server_config(
        {"issuer": ISSUER, "upstreamProviders": [UPSTREAM]}, resolver=SecretResolver(environ={})
    ).registration.protected


@pytest.mark.parametrize(
    ("registration", "spec", "message"),
    [
        ({"initialAccessTokenSecretRef": {"env": "IAT"}}, {},
         "embeddedAuthServer.registration.initialAccessTokenSecretRef: unknown field"),
        ({"initialAccessTokenSecretRefs": [{"env": "SHORT"}]}, {},
         "embeddedAuthServer.registration.initialAccessTokenSecretRefs[0]: an initial access token must be at least "
         "32 bytes (got 31)"),
        ({"initialAccessTokenSecretRefs": [{"env": "IAT"}, {"env": "SPACES"}]}, {},
         "embeddedAuthServer.registration.initialAccessTokenSecretRefs[1]: must be sendable as a Bearer token"),
        ({"initialAccessTokenSecretRefs": [{"env": "MISSING"}]}, {},
         "embeddedAuthServer.registration.initialAccessTokenSecretRefs[0]"),
        ({"allowRegistrationScope": "yes"}, {}, "embeddedAuthServer.registration.allowRegistrationScope: must be true"),
        ({"allowRegistrationScope": True}, {},
         "embeddedAuthServer.registration.allowRegistrationScope: add client:register to scopesSupported"),
        ({}, {}, "embeddedAuthServer.registration: give initialAccessTokenSecretRefs or allowRegistrationScope: true"),
        ("on", {}, "embeddedAuthServer.registration: must be a mapping"),
    ],
)  # fmt: skip
def test_a_bad_registration_section_is_refused_naming_the_field(
    registration: Any, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(registration, **spec)
    assert str(caught.value).startswith(message), caught.value
    assert TOKEN not in str(caught.value)


# -- the endpoint --------------------------------------------------------------------------------------------------


@asynccontextmanager
async def registration_endpoint(registration: dict[str, Any] | None) -> AsyncIterator[Endpoint]:
    spec: dict[str, Any] = {"scopesSupported": ["openid", "mcp:read", "client:register"]}
    cfg = (
        parse(registration, **spec)
        if registration is not None
        else parse_auth_server_config(
            {"issuer": ISSUER, "upstreamProviders": [UPSTREAM], "storage": {"type": "memory"}, **spec},
            resolver=SecretResolver(environ={}),
        )
    )
    embedded = embedded_auth_server(cfg, server_name="t", mcp_path="/mcp", resource_url=None)
    routes = AuthServerRoutes(embedded.server, registration=embedded.registration).routes()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await routes[scope["path"]](scope, receive, send)

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
            yield http, embedded
    finally:
        await embedded.aclose()


def own_token(embedded: EmbeddedAuthServer, scope: str, **claims: Any) -> str:
    """An access token of this server, signed with its keys, as its token endpoint would mint it."""
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "admin", "aud": RESOURCE, "iat": now, "nbf": now, "exp": now + 300,
            "jti": f"j-{scope}-{now}", "client_id": "ops", "scope": scope, **claims}  # fmt: skip
    return embedded.server.keys.sign(body)


def refused_as_invalid_token(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == "invalid_token"
    return str(body["error_description"])


@pytest.mark.anyio
async def test_without_an_initial_access_token_registration_is_refused_with_invalid_token() -> None:
    async with registration_endpoint({"initialAccessTokenSecretRefs": [{"env": "IAT"}]}) as (http, _):
        described = refused_as_invalid_token(await http.post("/oauth/register", json=METADATA))
        assert "initial access token" in described
        for header in (f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer "):
            refused_as_invalid_token(
                await http.post("/oauth/register", json=METADATA, headers={"authorization": header})
            )


@pytest.mark.anyio
async def test_each_configured_initial_access_token_lets_a_client_register() -> None:
    refs = {"initialAccessTokenSecretRefs": [{"env": "IAT"}, {"env": "IAT_OLD"}]}
    async with registration_endpoint(refs) as (http, embedded):
        for token in (TOKEN, OLD_TOKEN):  # the new one and the one being rotated out
            response = await http.post("/oauth/register", json=METADATA, headers={"authorization": f"Bearer {token}"})
            assert response.status_code == 201, response.text
            client_id = response.json()["client_id"]
            assert await embedded.server.clients.get(client_id) is not None
        # the metadata has no standard field saying registration is protected: nothing is added
        meta = await http.get("/.well-known/oauth-authorization-server")
        assert meta.json()["registration_endpoint"] == f"{ISSUER}/oauth/register"


@pytest.mark.anyio
async def test_a_token_of_this_server_with_client_register_lets_a_client_register() -> None:
    async with registration_endpoint({"allowRegistrationScope": True}) as (http, embedded):

        async def register(token: str) -> httpx.Response:
            return await http.post("/oauth/register", json=METADATA, headers={"authorization": f"Bearer {token}"})

        assert (await register(own_token(embedded, "openid client:register"))).status_code == 201
        assert (await register(own_token(embedded, "openid", scp=["client:register"]))).status_code == 201
        lacking = refused_as_invalid_token(await register(own_token(embedded, "openid mcp:read")))
        assert "client:register" in lacking
        expired = own_token(embedded, "client:register", exp=int(time.time()) - 600)
        refused_as_invalid_token(await register(expired))
        refused_as_invalid_token(await register(own_token(embedded, "client:register", aud="https://other.example")))
        refused_as_invalid_token(await register(own_token(embedded, "client:register", iss="https://other.example")))
        forged = own_token(embedded, "client:register").rsplit(".", 1)[0] + ".AAAA"
        refused_as_invalid_token(await register(forged))


@pytest.mark.anyio
async def test_a_revoked_token_no_longer_lets_a_client_register() -> None:
    async with registration_endpoint({"allowRegistrationScope": True}) as (http, embedded):
        token = own_token(embedded, "client:register", tfam="family-1")
        headers = {"authorization": f"Bearer {token}"}
        assert (await http.post("/oauth/register", json=METADATA, headers=headers)).status_code == 201
        await embedded.server._revocations.revoke("family-1", "test", client_id="ops", subject="admin")
        refused_as_invalid_token(await http.post("/oauth/register", json=METADATA, headers=headers))


@pytest.mark.anyio
async def test_without_the_option_registration_stays_open() -> None:
    async with registration_endpoint(None) as (http, _):
        assert (await http.post("/oauth/register", json=METADATA)).status_code == 201


@pytest.mark.anyio
async def test_static_clients_and_metadata_document_clients_need_no_registration(
    documents: DocumentServer, http: GuardedHTTPClient, store: MemoryStore
) -> None:
    cfg = parse(
        {"initialAccessTokenSecretRefs": [{"env": "IAT"}]},
        clients=[{"clientId": "ops-console", "redirectUris": [APP]}],
    )
    doc_id = documents.url("/client.json")
    doc = {"client_id": doc_id, "client_name": "CIMD app", "redirect_uris": [APP], "token_endpoint_auth_method": "none"}

    async def serve(_: web.Request) -> web.StreamResponse:
        return web.json_response(doc)

    documents.routes["/client.json"] = serve
    clients = ClientRegistry(
        store, static=cfg.clients, scopes_supported=cfg.scopes_supported, http=http, allow_private_metadata=True
    )
    server = AuthorizationServer(
        cfg,
        keys=SigningKeys.from_pems([]),
        hmac_keys=HMACKeys.from_config([b"k" * 32]),
        store=store,
        clients=clients,
        upstreams=[FakeUpstream()],
        audiences=[RESOURCE],
    )
    routes = AuthServerRoutes(server, registration=RegistrationAccess(cfg.registration)).routes()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await routes[scope["path"]](scope, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as browser:
        assert (await browser.post("/oauth/register", json=METADATA)).status_code == 401

        async def authorize(client_id: str) -> httpx.Response:
            params = {"client_id": client_id, "redirect_uri": APP, "response_type": "code", "scope": "openid",
                      "code_challenge": CHALLENGE, "code_challenge_method": "S256"}  # fmt: skip
            return await browser.get("/oauth/authorize", params=params)

        static = await authorize("ops-console")  # a static client goes straight to the upstream
        assert static.status_code == 302
        assert static.headers["location"].startswith("https://idp.example/authorize")
        cimd = await authorize(doc_id)  # a metadata document client is found, and asked for consent
        assert cimd.status_code == 200, cimd.text[:300]
        assert "CIMD app" in cimd.text


class FakeUpstream:
    name = "okta"

    async def authorization_url(self, *, state: str, code_challenge: str, nonce: str, redirect_uri: str) -> str:
        return f"https://idp.example/authorize?state={state}"

    async def exchange_code(self, code: str, *, code_verifier: str, nonce: str, redirect_uri: str) -> Any:
        raise NotImplementedError

    async def refresh(self, refresh_token: str) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass
