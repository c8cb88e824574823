"""The embedded authorization server as a security token service (RFC 8693), through real processes: a token the
real OpenID provider (npm `oidc-provider`) issued is exchanged at the gateway's `/oauth/token` for a token of the
gateway's own audience, which that gateway then accepts for MCP calls."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.test_embedded_auth_server import embedded_setup, run_args
from support.backend import free_port
from support.gateway import hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
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
