"""An `oauth2` upstream (GitHub style) against a real HTTP IdP on 127.0.0.1: explicit endpoints, form-encoded or
JSON token answers, userinfo with a field mapping."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from upstream_idp import CLIENT_ID, CLIENT_SECRET, NONCE, REDIRECT_URI, FakeIdP

from hivegate.authserver.pkce import challenge_of, new_verifier
from hivegate.authserver.settings import FieldMapping, UpstreamConfig, UserInfoConfig
from hivegate.authserver.upstream import (
    OAuth2Upstream,
    OIDCUpstream,
    UpstreamError,
    build_upstream,
    upstream_http_client,
)
from hivegate.errors import ConfigError
from hivegate.httpclient.guard import GuardedHTTPClient

pytestmark = pytest.mark.anyio

VERIFIER = new_verifier()
GITHUB_USER = {"id": 12345, "login": "octocat", "name": None, "email": None, "site_admin": False}


def config(idp: FakeIdP, **changes: Any) -> UpstreamConfig:
    base = UpstreamConfig(
        name="github",
        type="oauth2",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scopes=("read:user", "user:email"),
        authorization_endpoint="https://github.example/login/oauth/authorize",
        token_endpoint=f"{idp.base}/token",
        user_info=UserInfoConfig(
            endpoint_url=f"{idp.base}/user",
            additional_headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
            field_mapping=FieldMapping(subject_fields=("id",), name_fields=("name", "login")),
        ),
    )
    return replace(base, **changes)


async def login(provider: OAuth2Upstream, code: str = "good-code") -> Any:
    return await provider.exchange_code(code, code_verifier=VERIFIER, nonce=NONCE, redirect_uri=REDIRECT_URI)


async def test_authorization_url_has_pkce_and_no_nonce(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    provider = OAuth2Upstream(config(idp, additional_authorization_params={"allow_signup": "false"}), http)
    challenge = challenge_of(VERIFIER)

    url = await provider.authorization_url(
        state="st.1", code_challenge=challenge, nonce=NONCE, redirect_uri=REDIRECT_URI
    )

    assert url.startswith("https://github.example/login/oauth/authorize?")
    assert {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()} == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "read:user user:email",
        "state": "st.1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "allow_signup": "false",
    }


async def test_authorization_url_without_scopes_sends_none(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    provider = OAuth2Upstream(config(idp, scopes=()), http)
    url = await provider.authorization_url(state="s", code_challenge="c" * 43, nonce=NONCE, redirect_uri=REDIRECT_URI)
    assert "scope" not in parse_qs(urlsplit(url).query)


async def test_github_shaped_login_maps_id_and_login(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.userinfo = dict(GITHUB_USER)
    idp.form_encoded = True  # GitHub's default answer

    tokens, identity = await login(OAuth2Upstream(config(idp), http))

    assert tokens.access_token == idp.issued[0]
    assert tokens.refresh_token == idp.issued[1]
    assert tokens.id_token is None
    assert tokens.expires_at is not None  # expires_in arrived as text
    assert identity.subject == "12345"
    assert identity.name == "octocat"  # `name` is null: the next field wins
    assert identity.email is None
    assert identity.claims == GITHUB_USER


async def test_token_request_posts_credentials_and_asks_for_json(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.userinfo = dict(GITHUB_USER)
    tokens, _ = await login(OAuth2Upstream(config(idp), http))

    (request,) = idp.seen("/token")
    assert request.headers["Accept"] == "application/json"
    assert "Authorization" not in request.headers
    assert request.form == {
        "grant_type": "authorization_code",
        "code": "good-code",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": VERIFIER,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    (info,) = idp.seen("/user")
    assert info.method == "GET"
    assert info.headers["Authorization"] == f"Bearer {tokens.access_token}"
    assert info.headers["Accept"] == "application/vnd.github+json"
    assert info.headers["X-GitHub-Api-Version"] == "2022-11-28"


async def test_userinfo_by_post(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.userinfo = {"sub": "u-1", "email": "u1@example.com"}
    info = UserInfoConfig(endpoint_url=f"{idp.base}/userinfo", http_method="POST")
    _, identity = await login(OAuth2Upstream(config(idp, user_info=info), http))

    assert identity.subject == "u-1"
    assert identity.email == "u1@example.com"
    assert idp.seen("/userinfo")[0].method == "POST"


async def test_public_client_sends_only_its_id(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.userinfo = dict(GITHUB_USER)
    await login(OAuth2Upstream(config(idp, client_secret=None), http))
    (request,) = idp.seen("/token")
    assert request.form["client_id"] == CLIENT_ID
    assert "client_secret" not in request.form


async def test_userinfo_without_a_subject_is_access_denied(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.userinfo = {"id": None, "login": "ghost"}
    with pytest.raises(UpstreamError) as info:
        await login(OAuth2Upstream(config(idp), http))
    assert info.value.error == "access_denied"
    assert info.value.description == "the upstream's user info names no user (looked for: id)"


async def test_userinfo_refusal_does_not_leak_the_access_token(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.userinfo_status = 401
    with pytest.raises(UpstreamError) as info:
        await login(OAuth2Upstream(config(idp), http))
    assert info.value.error == "server_error"
    assert idp.issued
    for token in idp.issued:
        assert token not in str(info.value)
        assert token not in info.value.description


async def test_form_encoded_error_with_status_200_is_an_error(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    body = b"error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired."
    idp.token_reply = (200, "application/x-www-form-urlencoded", body)
    with pytest.raises(UpstreamError) as info:
        await login(OAuth2Upstream(config(idp), http))
    assert info.value.error == "bad_verification_code"
    assert info.value.description == "The code passed is incorrect or expired."


async def test_json_error_keeps_the_upstream_code(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    with pytest.raises(UpstreamError) as info:
        await login(OAuth2Upstream(config(idp), http), code="stale")
    assert (info.value.error, info.value.description) == ("invalid_grant", "The code has expired")


async def test_unreadable_answer_is_a_server_error(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.token_reply = (200, "text/html", b"<html>maintenance</html>")
    with pytest.raises(UpstreamError) as info:
        await login(OAuth2Upstream(config(idp), http))
    assert info.value.error == "server_error"
    assert info.value.description == "the token endpoint answered HTTP 200 without a token response"


async def test_idp_down_is_temporarily_unavailable(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    provider = OAuth2Upstream(config(idp, token_endpoint="http://127.0.0.1:1/login/oauth/access_token"), http)
    with pytest.raises(UpstreamError) as info:
        await login(provider)
    assert info.value.error == "temporarily_unavailable"


async def test_refresh_keeps_or_replaces_the_refresh_token(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.userinfo = dict(GITHUB_USER)
    provider = OAuth2Upstream(config(idp), http)
    tokens, _ = await login(provider)
    assert tokens.refresh_token is not None

    rotated, identity = await provider.refresh(tokens.refresh_token)
    idp.rotate = False
    kept, _ = await provider.refresh(tokens.refresh_token)

    assert rotated.refresh_token not in (tokens.refresh_token, None)
    assert kept.refresh_token == tokens.refresh_token
    assert identity is None  # no ID token: the login's claims stand
    assert kept.access_token != rotated.access_token
    assert idp.seen("/token")[-1].form["grant_type"] == "refresh_token"


async def test_build_upstream_picks_the_kind(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    oidc = UpstreamConfig(name="corp", type="oidc", client_id="c", issuer_url=idp.issuer)
    made = [build_upstream(config(idp), http), build_upstream(oidc, http)]
    assert isinstance(made[0], OAuth2Upstream)
    assert isinstance(made[1], OIDCUpstream)
    assert [u.name for u in made] == ["github", "corp"]
    for upstream in made:
        await upstream.aclose()


def test_an_incomplete_oauth2_config_is_refused() -> None:
    with pytest.raises(ConfigError):
        OAuth2Upstream(UpstreamConfig(name="x", type="oauth2", client_id="c"), GuardedHTTPClient())


async def test_http_client_allows_http_only_when_configured(idp: FakeIdP) -> None:
    https_only = UpstreamConfig(name="a", type="oidc", client_id="c", issuer_url="https://idp.example")
    loopback = UpstreamConfig(name="b", type="oidc", client_id="c", issuer_url=idp.issuer)
    strict, relaxed = upstream_http_client([https_only]), upstream_http_client([https_only, loopback])
    try:
        with pytest.raises(UpstreamError) as info:
            await OIDCUpstream(loopback, strict).authorization_url(
                state="s", code_challenge="c" * 43, nonce=NONCE, redirect_uri=REDIRECT_URI
            )
        assert info.value.error == "server_error"  # the guard's refusal is a configuration problem
        url = await OIDCUpstream(loopback, relaxed).authorization_url(
            state="s", code_challenge="c" * 43, nonce=NONCE, redirect_uri=REDIRECT_URI
        )
        assert url.startswith(f"{idp.base}/authorize?")
    finally:
        await strict.aclose()
        await relaxed.aclose()
