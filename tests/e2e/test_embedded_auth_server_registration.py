"""`hivegate run --auth-server-config` with protected dynamic client registration (RFC 7591 section 3): without an
initial access token `/oauth/register` answers 401 `invalid_token`; with the configured one, or with a token of the
server carrying `client:register`, a client registers and logs in; a static client logs in as before. Real
processes: hivegate and oidc-provider (Node)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from e2e.oidc_provider import start_oidc_provider, web_client
from e2e.test_embedded_auth_server_flows import (
    ENV,
    callback,
    echo,
    gateway_args,
    no_traceback,
    oidc_upstream,
    write_config,
)
from support.backend import free_port
from support.gateway import hivegate_run
from support.oauth_login import APP_REDIRECT, authorize_url, follow, login, pkce, query_of, redeem

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

INITIAL_ACCESS_TOKEN = "e2e-initial-access-token-" + "q" * 24
METADATA = {"redirect_uris": [APP_REDIRECT], "token_endpoint_auth_method": "none", "client_name": "protected e2e"}


async def test_registration_needs_an_initial_access_token_and_static_clients_still_log_in(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with start_oidc_provider(clients=[web_client("hivegate-as", [callback(port)], secret="as-secret")]) as idp:
        path = write_config(tmp_path, base, [oidc_upstream("corp", idp)])
        spec = json.loads(path.read_text())
        spec["scopesSupported"] = ["openid", "profile", "email", "offline_access", "client:register"]
        spec["clients"] = [{"clientId": "ops-console", "redirectUris": [APP_REDIRECT]}]
        spec["registration"] = {
            "initialAccessTokenSecretRefs": [{"env": "E2E_INITIAL_ACCESS_TOKEN"}],
            "allowRegistrationScope": True,
        }
        path.write_text(json.dumps(spec))
        env = {**ENV, "E2E_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN}
        async with hivegate_run(gateway_args(port, path), env=env) as gw, httpx.AsyncClient(timeout=10) as http:
            register = f"{base}/oauth/register"
            for headers in ({}, {"authorization": "Bearer not-the-initial-access-token-at-all-xxxxxxxx"}):
                refused = await http.post(register, json=METADATA, headers=headers)
                assert refused.status_code == 401, refused.text
                assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
                assert refused.json()["error"] == "invalid_token"
                assert refused.json()["error_description"]

            # a static client needs no registration: its login and its token work as before
            code, verifier = await login(base, "ops-console")
            static = await redeem(http, base, "ops-console", code, verifier)
            assert static.status_code == 200, static.text
            assert await echo(gw.url, static.json()["access_token"], "static still works") == "static still works"

            # the configured initial access token registers a client, which then logs in and calls a tool
            headers = {"authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"}
            registered = await http.post(register, json=METADATA, headers=headers)
            assert registered.status_code == 201, registered.text
            client_id = registered.json()["client_id"]
            code, verifier = await login(base, client_id)
            token = (await redeem(http, base, client_id, code, verifier)).json()["access_token"]
            assert await echo(gw.url, token, "registered") == "registered"

            # a token of this server lets a client register only when it carries client:register
            lacking = await http.post(register, json=METADATA, headers={"authorization": f"Bearer {token}"})
            assert lacking.status_code == 401, lacking.text
            assert "client:register" in lacking.json()["error_description"]
            code, verifier = await login_with_scope(base, "ops-console", "openid client:register")
            admin = (await redeem(http, base, "ops-console", code, verifier)).json()
            assert admin["scope"] == "openid client:register"
            allowed = await http.post(
                register, json=METADATA, headers={"authorization": f"Bearer {admin['access_token']}"}
            )
            assert allowed.status_code == 201, allowed.text
        no_traceback(gw)


async def login_with_scope(base: str, client_id: str, scope: str) -> tuple[str, str]:
    """A login in a new browser asking for `scope`: (authorization code, code verifier)."""
    verifier, challenge = pkce()
    async with httpx.AsyncClient(timeout=10) as browser:
        url = authorize_url(base, client_id, challenge, "st", scope=scope)
        landed = query_of(await follow(browser, url, until=APP_REDIRECT))
    return landed["code"], verifier
