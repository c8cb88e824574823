"""The authorization server's upstream providers against a real OpenID provider (npm `oidc-provider`): the browser
leg is driven headlessly from the URL our upstream builds, then the code is redeemed, the identity read and the
tokens refreshed. Once as an `oidc` upstream (discovery, ID token, userinfo), once as a plain `oauth2` upstream
pointed at the same provider's endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from e2e.oidc_provider import OIDCProvider, start_oidc_provider, web_client
from hivegate.authserver.pkce import challenge_of, new_verifier, random_id
from hivegate.authserver.settings import FieldMapping, UpstreamConfig, UserInfoConfig
from hivegate.authserver.upstream import UpstreamError, UpstreamProvider, build_upstream, upstream_http_client

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"  # never contacted: the last redirect is read, not followed
CONFIDENTIAL = web_client("hivegate-as", [REDIRECT_URI], secret="as-secret")
PUBLIC = web_client("hivegate-as-public", [REDIRECT_URI])
POSTING = {
    **web_client("hivegate-as-post", [REDIRECT_URI], secret="post-secret"),
    "token_endpoint_auth_method": "client_secret_post",
}
# oidc-provider drops offline_access (so issues no refresh token) unless the request also says prompt=consent
CONSENT = {"prompt": "consent"}


def oidc_config(provider: OIDCProvider, client: Mapping[str, Any]) -> UpstreamConfig:
    return UpstreamConfig(
        name="corp",
        type="oidc",
        client_id=client["client_id"],
        client_secret=client.get("client_secret"),
        issuer_url=provider.issuer,
        scopes=("openid", "profile", "email", "offline_access"),
        additional_authorization_params=CONSENT,
    )


def oauth2_config(provider: OIDCProvider) -> UpstreamConfig:
    return UpstreamConfig(
        name="plain",
        type="oauth2",
        client_id=POSTING["client_id"],
        client_secret=POSTING["client_secret"],
        scopes=("openid", "profile", "email", "offline_access"),
        additional_authorization_params=CONSENT,
        authorization_endpoint=provider.authorization_endpoint,
        token_endpoint=provider.token_endpoint,
        user_info=UserInfoConfig(
            endpoint_url=provider.userinfo_endpoint,
            field_mapping=FieldMapping(subject_fields=("sub",), name_fields=("name",), email_fields=("email",)),
        ),
    )


@asynccontextmanager
async def upstream_for(config: UpstreamConfig) -> AsyncIterator[UpstreamProvider]:
    http = upstream_http_client([config])
    upstream = build_upstream(config, http)
    try:
        yield upstream
    finally:
        await upstream.aclose()
        await http.aclose()


async def sign_in(upstream: UpstreamProvider, *, state: str, nonce: str, verifier: str) -> dict[str, str]:
    """Follow the provider's redirects (it logs alice in and consents by itself) from our authorization URL to our
    redirect URI; the callback's query parameters."""
    url = await upstream.authorization_url(
        state=state, code_challenge=challenge_of(verifier), nonce=nonce, redirect_uri=REDIRECT_URI
    )
    async with httpx.AsyncClient() as browser:  # keeps the provider's cookies between hops
        for _ in range(10):
            response = await browser.get(url)
            assert response.status_code in (302, 303), f"{response.status_code} {response.text[:300]}"
            url = urljoin(url, response.headers["location"])
            if url.startswith(REDIRECT_URI):
                return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    raise AssertionError("the provider never redirected to our redirect URI")


async def test_oidc_upstream_logs_alice_in_and_refreshes() -> None:
    async with (
        start_oidc_provider(clients=[CONFIDENTIAL]) as provider,
        upstream_for(oidc_config(provider, CONFIDENTIAL)) as upstream,
    ):
        verifier, nonce, state = new_verifier(), random_id(16), f"{random_id(12)}.0"
        callback = await sign_in(upstream, state=state, nonce=nonce, verifier=verifier)
        assert callback["state"] == state
        assert callback["iss"] == provider.issuer  # RFC 9207

        tokens, identity = await upstream.exchange_code(
            callback["code"], code_verifier=verifier, nonce=nonce, redirect_uri=REDIRECT_URI
        )
        assert tokens.refresh_token is not None
        fresh, refreshed = await upstream.refresh(tokens.refresh_token)

    assert refreshed is not None  # who the refreshed ID token says the user is
    assert (refreshed.subject, refreshed.claims["groups"]) == ("alice", ["mcp-developers"])
    assert identity.subject == "alice"
    assert identity.name == "Alice Example"
    assert identity.email == "alice@example.com"
    assert identity.claims["groups"] == ["mcp-developers"]
    assert identity.claims["nonce"] == nonce
    assert tokens.id_token is not None
    assert tokens.expires_at is not None
    assert set((tokens.scope or "").split()) >= {"openid", "offline_access"}
    assert fresh.access_token != tokens.access_token
    assert fresh.id_token is not None  # validated (same claims: within one second it may even be the same token)
    assert fresh.refresh_token == tokens.refresh_token  # a confidential client's token is not rotated


async def test_public_oidc_client_gets_rotated_refresh_tokens() -> None:
    async with (
        start_oidc_provider(clients=[PUBLIC]) as provider,
        upstream_for(oidc_config(provider, PUBLIC)) as upstream,
    ):
        verifier, nonce = new_verifier(), random_id(16)
        callback = await sign_in(upstream, state="s.0", nonce=nonce, verifier=verifier)
        tokens, identity = await upstream.exchange_code(
            callback["code"], code_verifier=verifier, nonce=nonce, redirect_uri=REDIRECT_URI
        )
        assert tokens.refresh_token is not None
        fresh, _ = await upstream.refresh(tokens.refresh_token)
        assert fresh.refresh_token is not None
        newer, _ = await upstream.refresh(fresh.refresh_token)
        with pytest.raises(UpstreamError) as reused:  # the rotated-out token is dead
            await upstream.refresh(tokens.refresh_token)

    assert identity.subject == "alice"
    assert fresh.refresh_token != tokens.refresh_token
    assert newer.refresh_token not in (None, fresh.refresh_token)
    assert reused.value.error == "invalid_grant"
    assert tokens.refresh_token not in str(reused.value)


async def test_a_replayed_nonce_is_refused() -> None:
    async with (
        start_oidc_provider(clients=[CONFIDENTIAL]) as provider,
        upstream_for(oidc_config(provider, CONFIDENTIAL)) as upstream,
    ):
        verifier = new_verifier()
        callback = await sign_in(upstream, state="s.0", nonce=random_id(16), verifier=verifier)
        with pytest.raises(UpstreamError) as info:
            await upstream.exchange_code(
                callback["code"], code_verifier=verifier, nonce="another-login", redirect_uri=REDIRECT_URI
            )

    assert info.value.error == "server_error"
    assert info.value.description == "the upstream's ID token is not valid: its nonce does not match the login's"


async def test_a_wrong_code_verifier_is_the_providers_invalid_grant() -> None:
    async with (
        start_oidc_provider(clients=[CONFIDENTIAL]) as provider,
        upstream_for(oidc_config(provider, CONFIDENTIAL)) as upstream,
    ):
        nonce = random_id(16)
        callback = await sign_in(upstream, state="s.0", nonce=nonce, verifier=new_verifier())
        with pytest.raises(UpstreamError) as info:
            await upstream.exchange_code(
                callback["code"], code_verifier=new_verifier(), nonce=nonce, redirect_uri=REDIRECT_URI
            )

    assert info.value.error == "invalid_grant"
    assert info.value.description  # the provider's own words


async def test_oauth2_upstream_reads_the_user_from_userinfo() -> None:
    async with (
        start_oidc_provider(clients=[POSTING]) as provider,
        upstream_for(oauth2_config(provider)) as upstream,
    ):
        verifier = new_verifier()
        callback = await sign_in(upstream, state="s.0", nonce="unused", verifier=verifier)
        tokens, identity = await upstream.exchange_code(
            callback["code"], code_verifier=verifier, nonce="unused", redirect_uri=REDIRECT_URI
        )
        assert tokens.refresh_token is not None
        fresh, _ = await upstream.refresh(tokens.refresh_token)

    assert identity.subject == "alice"
    assert identity.name == "Alice Example"
    assert identity.email == "alice@example.com"
    assert identity.claims["groups"] == ["mcp-developers"]
    assert "nonce" not in identity.claims  # userinfo only: no ID token is read
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token == tokens.refresh_token
