"""The embedded authorization server as a security token service (RFC 8693), through real processes: a token the
real OpenID provider (npm `oidc-provider`) issued is exchanged at the gateway's `/oauth/token` for a token of the
gateway's own audience, which that gateway then accepts for MCP calls; and every kind of subject token it must refuse,
issued by that provider, is refused with the RFC error naming the rule (one provider and one gateway serve those)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from joserfc.jwk import ECKey
from prometheus_client.parser import text_string_to_metric_families

from e2e.oidc_provider import OIDCProvider, start_oidc_provider, web_client
from e2e.test_embedded_auth_server import embedded_setup, run_args
from support.backend import free_port
from support.gateway import RunningGateway, fixture_command, hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.xdist_group("token_exchange_sts")]  # one gateway

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
STS_CLIENT = """    clients:
      - clientId: gateway-a
        grantTypes: [token_exchange]
        clientSecretRef: {name: gateway-a, key: secret}
"""


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_an_upstream_token_is_exchanged_for_one_the_gateway_accepts(tmp_path: Path) -> None:
    async with embedded_setup(tmp_path, extra=STS_CLIENT) as setup:
        env = {**setup.env, "HIVEGATE_SECRET_GATEWAY_A_SECRET": "gateway-a-secret-value"}
        diagnostics = free_port()
        args = run_args(setup, "--diagnostics-port", str(diagnostics))
        async with hivegate_run(args, env=env) as gw, httpx.AsyncClient(timeout=30) as http:
            metadata = (await http.get(f"{setup.issuer}/.well-known/oauth-authorization-server")).json()
            assert GRANT in metadata["grant_types_supported"]
            tokens = await setup.idp.authorization_code_token(
                "hivegate-as",
                f"{setup.issuer}/oauth/callback",
                resource="https://upstream-api.example",
                client_secret="as-secret",
            )
            subject = str(tokens["access_token"])
            form = {"grant_type": GRANT, "subject_token": subject, "subject_token_type": ACCESS, "audience": gw.url}
            answer = await http.post(
                metadata["token_endpoint"], data=form, auth=("gateway-a", "gateway-a-secret-value")
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["issued_token_type"] == ACCESS
            claims = claims_of(body["access_token"])
            assert claims["iss"] == setup.issuer
            assert claims["aud"] == gw.url
            assert claims["sub"] == "alice"  # the subject token's subject
            assert claims["act"] == {"sub": "gateway-a"}

            init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}
            headers = {
                "authorization": f"Bearer {body['access_token']}",
                "accept": "application/json, text/event-stream",
            }
            initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
            accepted = await http.post(gw.url, headers=headers, json=initialize)
            assert accepted.status_code == 200, accepted.text

            # the raw upstream token is not a token of this gateway
            raw = {**headers, "authorization": f"Bearer {subject}"}
            refused = await http.post(gw.url, headers=raw, json={"jsonrpc": "2.0", "id": 2, "method": "ping"})
            assert refused.status_code == 401

            wrong = await http.post(metadata["token_endpoint"], data=form, auth=("gateway-a", "not-the-secret"))
            assert wrong.status_code == 401
            assert wrong.json()["error"] == "invalid_client"
            forged = await http.post(
                metadata["token_endpoint"],
                data={**form, "subject_token": subject[:-4] + "AAAA"},
                auth=("gateway-a", "gateway-a-secret-value"),
            )
            assert forged.status_code == 400
            assert forged.json()["error"] == "invalid_grant"
            scraped = (await http.get(f"http://127.0.0.1:{diagnostics}/metrics")).text
            grants = {
                (sample.labels["grant_type"], sample.labels["outcome"]): sample.value
                for family in text_string_to_metric_families(scraped)
                if family.name == "hivegate_token_grants"
                for sample in family.samples
                if sample.name == "hivegate_token_grants_total"
            }
            assert grants == {
                ("token_exchange", "success"): 1.0,
                ("token_exchange", "invalid_client"): 1.0,
                ("token_exchange", "invalid_grant"): 1.0,
            }
        assert not any("gateway-a-secret-value" in line or subject in line for line in gw.stderr)


# -- refusals, against one provider and one gateway ------------------------------------------------------------------

OTHER_APP = "other-app"  # another application at the same provider
OTHER_REDIRECT = "http://127.0.0.1:9/other/callback"  # never contacted: the login stops there
ACCEPTED_API = "https://accepted-api.example"  # listed in tokenExchange.acceptedAudiences
OTHER_API = "https://other-api.example"  # not listed
GATEWAY_SECRET = "gateway-a-secret-value"


@dataclass
class STS:
    gateway: RunningGateway
    idp: OIDCProvider
    issuer: str
    callback: str  # this server's redirect URI at the provider (its client `hivegate-as`)

    async def exchange(self, subject: str, subject_type: str = ACCESS, **form: str) -> httpx.Response:
        body = {"grant_type": GRANT, "subject_token": subject, "subject_token_type": subject_type, **form}
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.post(f"{self.issuer}/oauth/token", data=body, auth=("gateway-a", GATEWAY_SECRET))

    async def other_app_tokens(self, resource: str | None = None) -> dict[str, Any]:
        return await self.idp.authorization_code_token(
            OTHER_APP, OTHER_REDIRECT, resource=resource, client_secret="other-secret"
        )

    async def our_tokens(self, resource: str | None = None) -> dict[str, Any]:
        return await self.idp.authorization_code_token(
            "hivegate-as", self.callback, resource=resource, client_secret="as-secret"
        )

    async def logged(self, text: str) -> str:
        """The gateway's first log line containing `text`, waited for (the log is read as it is written)."""
        with anyio.fail_after(10):
            while True:
                found = next((line for line in self.gateway.stderr if text in line), None)
                if found is not None:
                    return found
                await anyio.sleep(0.02)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope, for the module-scoped gateway below


@pytest.fixture(scope="module")
async def sts(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[STS]:
    """oidc-provider with two applications (this server's `hivegate-as` and `other-app`), and a gateway whose
    embedded authorization server trusts it, accepting upstream access tokens for `ACCEPTED_API` and `other-app`."""
    tmp = tmp_path_factory.mktemp("sts")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    callback = f"{issuer}/oauth/callback"
    (tmp / "signing.pem").write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    clients = [
        web_client("hivegate-as", [callback], secret="as-secret"),
        web_client(OTHER_APP, [OTHER_REDIRECT], secret="other-secret"),
    ]
    async with start_oidc_provider(clients=clients) as idp:
        config = tmp / "auth-server.yaml"
        config.write_text(
            f"""
issuer: '{issuer}'
signingKeySecretRefs:
  - file: signing.pem
storage:
  type: memory
scopesSupported: [openid, profile, email, offline_access, 'mcp:tools', 'mcp:admin']
clients:
  - clientId: gateway-a
    grantTypes: [token_exchange]
    clientSecretRef: {{name: gateway-a, key: secret}}
upstreamProviders:
  - name: corp
    type: oidc
    oidcConfig:
      issuerUrl: '{idp.issuer}'
      clientId: hivegate-as
      clientSecretRef: {{name: upstream-idp-secret, key: client-secret}}
      tokenExchange:
        acceptedAudiences: ['{ACCEPTED_API}', {OTHER_APP}]
"""
        )
        env = {
            "HIVEGATE_SECRET_UPSTREAM_IDP_SECRET_CLIENT_SECRET": "as-secret",
            "HIVEGATE_SECRET_GATEWAY_A_SECRET": GATEWAY_SECRET,
        }
        args = ["--port", str(port), "--auth-server-config", str(config), *fixture_command()]
        async with hivegate_run(args, env=env) as gateway:
            yield STS(gateway, idp, issuer, callback)


def refused(answer: httpx.Response, error: str) -> str:
    """The description of an RFC 6749 section 5.2 error answer with code `error`."""
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == error, body
    return str(body["error_description"])


async def test_an_upstream_access_token_for_another_audience_is_refused(sts: STS) -> None:
    subject = str((await sts.other_app_tokens(resource=OTHER_API))["access_token"])
    assert claims_of(subject)["aud"] == OTHER_API
    description = refused(await sts.exchange(subject), "invalid_grant")
    assert description.startswith(f"the subject token is not meant for this server (aud '{OTHER_API}'")
    line = await sts.logged(f"(aud '{OTHER_API}'")
    assert "token exchange refused: client 'gateway-a', subject sub='alice': invalid_grant" in line
    assert not any(subject in line or subject.split(".")[1] in line for line in sts.gateway.stderr)


async def test_an_upstream_access_token_for_an_accepted_audience_is_exchanged(sts: STS) -> None:
    subject = str((await sts.other_app_tokens(resource=ACCEPTED_API))["access_token"])
    answer = await sts.exchange(subject)
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert claims_of(token)["sub"] == "alice"
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}
    headers = {"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=30) as http:
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
        assert (await http.post(sts.gateway.url, headers=headers, json=initialize)).status_code == 200


@pytest.mark.parametrize("label", [ACCESS, JWT, ID_TOKEN])
async def test_an_id_token_issued_to_another_application_is_refused_whatever_its_label(sts: STS, label: str) -> None:
    id_token = str((await sts.other_app_tokens())["id_token"])
    assert claims_of(id_token)["aud"] == OTHER_APP  # an audience accepted for access tokens, not for ID tokens
    description = refused(await sts.exchange(id_token, label), "invalid_grant")
    assert description == (
        "the subject token is an ID token not valid for this server (its audience ('aud') does not include our "
        "client id): only ID tokens issued to our client 'hivegate-as' at the upstream are exchanged"
    )


@pytest.mark.parametrize("label", [ID_TOKEN, ACCESS])
async def test_an_id_token_issued_to_this_server_is_exchanged(sts: STS, label: str) -> None:
    id_token = str((await sts.our_tokens())["id_token"])
    answer = await sts.exchange(id_token, label)
    assert answer.status_code == 200, answer.text
    assert claims_of(answer.json()["access_token"])["sub"] == "alice"


async def test_an_access_token_labelled_id_token_is_refused(sts: STS) -> None:
    subject = str((await sts.other_app_tokens(resource=ACCEPTED_API))["access_token"])
    description = refused(await sts.exchange(subject, ID_TOKEN), "invalid_request")
    assert description == "subject_token_type is id_token, but the subject token is an access token"


async def test_an_exchange_asking_for_more_scope_than_the_subject_holds_is_refused(sts: STS) -> None:
    subject = str((await sts.other_app_tokens(resource=ACCEPTED_API))["access_token"])
    assert "mcp:admin" not in claims_of(subject)["scope"].split()
    description = refused(await sts.exchange(subject, scope="mcp:tools mcp:admin"), "invalid_scope")
    assert description == "scope 'mcp:admin' is not held by the subject token"
    narrowed = await sts.exchange(subject, scope="mcp:tools")
    assert narrowed.status_code == 200, narrowed.text
    assert claims_of(narrowed.json()["access_token"])["scope"] == "mcp:tools"
