"""Step-up at the authorization server: a registered client keeps its registration and asks for more scopes (those of
an `insufficient_scope` challenge); it gets them when they are supported, the consent page names them, and the
token carries them."""

from __future__ import annotations

from typing import Any

import pytest
from authserver_fakes import APP, CHALLENGE, ISSUER, RESOURCE, VERIFIER, Upstream, claims_of, form, query

from hivegate.authserver.clients import Client
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.pages import consent_page
from hivegate.authserver.service import AuthorizationServer, Consent, Redirect
from hivegate.authserver.settings import AuthServerConfig, UpstreamConfig
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

REGISTERED = Client("dyn-1", (APP,), "dynamic", client_name="agent", scope="openid offline_access")


class Registered:
    async def get(self, client_id: str) -> Client | None:
        return REGISTERED if client_id == REGISTERED.client_id else None

    async def register(self, metadata: Any, *, remote: str) -> tuple[Client, dict[str, Any]]:
        raise NotImplementedError


def server() -> AuthorizationServer:
    cfg = AuthServerConfig(
        issuer=ISSUER,
        upstreams=(UpstreamConfig("okta", "oidc", "cid", issuer_url="https://idp.example"),),
        scopes_supported=("openid", "offline_access", "mcp:read", "mcp:admin"),
    )
    return AuthorizationServer(
        cfg,
        keys=SigningKeys.from_pems([]),
        hmac_keys=HMACKeys.from_config([b"k" * 32]),
        store=MemoryStore(),
        clients=Registered(),
        upstreams=[Upstream("okta")],
        audiences=[RESOURCE],
    )


async def authorize(s: AuthorizationServer, scope: str | None) -> Consent | Redirect:
    params = {"response_type": "code", "client_id": REGISTERED.client_id, "redirect_uri": APP, "state": "st",
              "code_challenge": CHALLENGE, "code_challenge_method": "S256", "resource": RESOURCE}  # fmt: skip
    outcome = await s.authorize(form(**params, **({"scope": scope} if scope is not None else {})), "b-1")
    assert isinstance(outcome, Consent | Redirect), outcome
    return outcome


async def test_a_registered_client_can_ask_for_more_than_it_registered_with() -> None:
    s = server()
    consent = await authorize(s, "openid offline_access mcp:admin")
    assert isinstance(consent, Consent)
    assert consent.scopes == ("openid", "offline_access", "mcp:admin")
    page = consent_page(consent, action="/oauth/consent").decode()
    assert "<code>mcp:admin</code>" in page

    upstream = await s.consent(form(login=consent.login, csrf=consent.csrf, decision="allow"), "b-1")
    assert isinstance(upstream, Redirect)
    back = await s.callback(form(state=query(upstream.url)["state"], code="c"), "b-1")
    assert isinstance(back, Redirect)
    token = await s.token(
        form(grant_type="authorization_code", code=query(back.url)["code"], client_id="dyn-1", redirect_uri=APP,
             code_verifier=VERIFIER),
        None,
    )  # fmt: skip
    assert token["scope"] == "openid offline_access mcp:admin"
    assert claims_of(s.keys.jwks(), token["access_token"])["scp"] == ["openid", "offline_access", "mcp:admin"]


async def test_without_scope_a_registered_client_gets_what_it_registered_and_unknown_scopes_are_refused() -> None:
    s = server()
    consent = await authorize(s, None)
    assert isinstance(consent, Consent)
    assert consent.scopes == ("offline_access", "openid")
    refused = await authorize(s, "openid mcp:root")
    assert isinstance(refused, Redirect)
    assert query(refused.url)["error"] == "invalid_scope"
    assert query(refused.url)["error_description"] == "scope 'mcp:root' is not supported"
