"""The MCP conformance suite's authorization-server scenarios against `hivegate run --auth-server-config`.

The embedded authorization server (issuer = the gateway's URL) sends the user on to a real OpenID provider (npm
`oidc-provider`, which logs `alice` in by itself). The suite (npm `conformance-next`, a 0.2.0 alpha: the pinned
0.1.16 has no authorization-server scenarios) checks the server's metadata, then prints an authorization URL and
waits for a browser to bring the code to its callback on 127.0.0.1; a headless browser does that here (approving
our consent page on the way, which static clients skip) and the suite redeems the code with PKCE. One gateway and
one provider serve the whole module; each test is one suite run with another client.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from e2e.conformance import ScenarioResult, run_authorization_scenarios
from e2e.oidc_provider import start_oidc_provider, web_client
from support.backend import free_port
from support.gateway import fixture_command, hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SCENARIOS = {"authorization-server-metadata-endpoint", "authorization-code-grant"}
STATIC_PUBLIC = "conformance-static-public"
STATIC_CONFIDENTIAL, STATIC_SECRET = "conformance-static-confidential", "static-client-secret"


class SuiteSendsNoClientSecret(Exception):
    """The known failure of conformance 0.2.0-alpha.12 with a confidential client (see `SUITE_BUG`)."""


# authorization-code-grant's selectTokenAuthMethod() picks `none` whenever the server's metadata lists it, even when
# --client-secret is given: `if (!options.clientSecret || authMethods.includes('none')) return 'none'`. Ours lists
# none, client_secret_basic and client_secret_post, so the suite redeems a confidential client's code with only
# client_id in the body, and the server rightly answers 401 invalid_client (RFC 6749 section 3.2.1: a confidential
# client must authenticate). With that line patched to skip `none` when a secret is given, both tests pass. Strict:
# once a suite release sends the secret, they pass and the marker must go.
SUITE_BUG_MESSAGE = "Invalid status code: 401"  # the suite's message for the token endpoint's 401
SUITE_BUG = pytest.mark.xfail(
    raises=SuiteSendsNoClientSecret,
    strict=True,
    reason="conformance 0.2.0-alpha.12 authenticates with `none` when the server supports it, ignoring the secret",
)


@dataclass(frozen=True)
class AuthServer:
    issuer: str
    resource: str  # the gateway's MCP endpoint, the token's audience
    callback_port: int

    @property
    def callback(self) -> str:
        return f"http://127.0.0.1:{self.callback_port}/callback"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope, for the module-scoped server below


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AuthServer]:
    """oidc-provider plus one gateway with the embedded authorization server and two static clients."""
    port, callback_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port}"
    callback = f"http://127.0.0.1:{callback_port}/callback"
    config = tmp_path_factory.mktemp("authserver") / "auth-server.yaml"
    upstream = web_client("hivegate-as", [f"{issuer}/oauth/callback"], secret="as-secret")
    async with start_oidc_provider(clients=[upstream]) as idp:
        config.write_text(
            f"""
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPExternalAuthConfig
metadata:
  name: embedded-auth-server
spec:
  type: embeddedAuthServer
  embeddedAuthServer:
    issuer: '{issuer}'
    storage:
      type: memory
    clients:
      - clientId: {STATIC_PUBLIC}
        redirectUris: ['{callback}']
      - clientId: {STATIC_CONFIDENTIAL}
        redirectUris: ['{callback}']
        clientSecretRef:
          name: static-client
          key: secret
    upstreamProviders:
      - name: corp
        type: oidc
        oidcConfig:
          issuerUrl: '{idp.issuer}'
          clientId: hivegate-as
          clientSecretRef:
            name: upstream-idp-secret
            key: client-secret
          scopes: [openid, profile, email]
"""
        )
        env = {
            "HIVEGATE_SECRET_UPSTREAM_IDP_SECRET_CLIENT_SECRET": "as-secret",
            "HIVEGATE_SECRET_STATIC_CLIENT_SECRET": STATIC_SECRET,
        }
        args = ["--port", str(port), "--auth-server-config", str(config), *fixture_command()]
        async with hivegate_run(args, env=env) as gw:
            yield AuthServer(issuer=issuer, resource=gw.url, callback_port=callback_port)


@dataclass
class Browser:
    """A headless person: follows redirects with cookies, approves our consent page, and finally requests the
    suite's callback, so that the suite receives the code."""

    callback: str
    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10))
    consents: int = 0
    landed: dict[str, str] | None = None

    async def visit(self, url: str) -> None:
        async with self.client:
            for _ in range(20):
                if url.startswith(self.callback):
                    self.landed = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
                    delivered = await self.client.get(url)
                    assert delivered.status_code == 200, f"the suite's callback: {delivered.status_code}"
                    return
                response = await self.client.get(url)
                if response.status_code == 200 and 'action="/oauth/consent"' in response.text:
                    self.consents += 1
                    fields = re.findall(r'name="(login|csrf)" value="([^"]*)"', response.text)
                    form = {name: unescape(value) for name, value in fields}
                    base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
                    response = await self.client.post(f"{base}/oauth/consent", data={**form, "decision": "allow"})
                assert response.status_code in (302, 303), f"{url}: {response.status_code} {response.text[:300]}"
                url = urljoin(url, response.headers["location"])
        raise AssertionError("too many redirects")


async def register(server: AuthServer, **metadata: Any) -> dict[str, Any]:
    """RFC 7591 dynamic client registration of a client whose redirect URI is the suite's callback."""
    body = {"redirect_uris": [server.callback], "client_name": "MCP conformance suite", **metadata}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.issuer}/oauth/register", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def problems(results: dict[str, ScenarioResult]) -> dict[str, list[str]]:
    """Every check that is not SUCCESS, with its message, by scenario."""
    return {
        name: [f"{c['status']} {c['id']}: {c.get('errorMessage', '')}" for c in result.checks]
        for name, result in sorted(results.items())
        if any(c["status"] != "SUCCESS" for c in result.checks)
    }


async def run_suite(server: AuthServer, client_id: str, secret: str | None = None) -> tuple[Browser, list[str]]:
    """Run every scenario with this client; returns the browser that logged in and the checks that ran."""
    browser = Browser(server.callback)
    results, output = await run_authorization_scenarios(
        server.issuer,
        browse=browser.visit,
        client_id=client_id,
        client_secret=secret,
        resource=server.resource,
        port=server.callback_port,
    )
    assert set(results) == SCENARIOS, output
    failed = problems(results)
    if secret and failed == {"authorization-code-grant": [f"FAILURE authorization-code-grant: {SUITE_BUG_MESSAGE}"]}:
        raise SuiteSendsNoClientSecret(output)
    assert failed == {}, output
    assert browser.landed is not None
    assert browser.landed["iss"] == server.issuer  # RFC 9207
    return browser, [f"{name}: {c['id']}" for name, result in sorted(results.items()) for c in result.checks]


async def test_a_dynamically_registered_public_client_passes(server: AuthServer) -> None:
    client = await register(server)
    assert client["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in client
    browser, checks = await run_suite(server, client["client_id"])
    assert browser.consents == 1  # a registered client is shown the consent page
    assert checks == [
        "authorization-code-grant: authorization-code-grant",
        "authorization-server-metadata-endpoint: authorization-server-metadata",
        "authorization-server-metadata-endpoint: authorization-server-metadata-cimd",
    ]


async def test_a_static_public_client_passes(server: AuthServer) -> None:
    browser, _ = await run_suite(server, STATIC_PUBLIC)
    assert browser.consents == 0  # static clients are trusted: no consent page


@SUITE_BUG
async def test_a_dynamically_registered_confidential_client_passes(server: AuthServer) -> None:
    # client_secret_post: the suite's first choice after `none`; the server holds a registered client to its method.
    client = await register(server, token_endpoint_auth_method="client_secret_post")
    assert client["token_endpoint_auth_method"] == "client_secret_post"
    browser, _ = await run_suite(server, client["client_id"], client["client_secret"])
    assert browser.consents == 1


@SUITE_BUG
async def test_a_static_confidential_client_passes(server: AuthServer) -> None:
    browser, _ = await run_suite(server, STATIC_CONFIDENTIAL, STATIC_SECRET)
    assert browser.consents == 0
