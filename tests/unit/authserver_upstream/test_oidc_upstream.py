"""An `oidc` upstream against a real HTTP IdP on 127.0.0.1: the authorization URL, the code exchange with ID-token
validation and userinfo, refresh, and how each failure is reported."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from upstream_idp import CLIENT_ID, CLIENT_SECRET, NONCE, REDIRECT_URI, FakeIdP, b64url, basic, unsigned

from hivegate.authn.discovery import OIDCDiscovery
from hivegate.authserver.pkce import challenge_of, new_verifier
from hivegate.authserver.settings import FieldMapping, UpstreamConfig, UserInfoConfig
from hivegate.authserver.upstream import OIDCUpstream, UpstreamError
from hivegate.httpclient.guard import GuardedHTTPClient

pytestmark = pytest.mark.anyio

VERIFIER = new_verifier()


def config(idp: FakeIdP, **changes: Any) -> UpstreamConfig:
    base = UpstreamConfig(
        name="corp",
        type="oidc",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        issuer_url=idp.issuer,
        scopes=("openid", "profile", "offline_access"),
    )
    return replace(base, **changes)


def upstream(idp: FakeIdP, http: GuardedHTTPClient, **changes: Any) -> OIDCUpstream:
    return OIDCUpstream(config(idp, **changes), http, discovery=OIDCDiscovery(http, idp.issuer, attempts=1))


async def login(idp: FakeIdP, provider: OIDCUpstream, *, code: str = "good-code", nonce: str = NONCE) -> Any:
    return await provider.exchange_code(code, code_verifier=VERIFIER, nonce=nonce, redirect_uri=REDIRECT_URI)


async def refused(idp: FakeIdP, provider: OIDCUpstream, *, nonce: str = NONCE) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await login(idp, provider, nonce=nonce)
    for token in idp.issued:
        assert token not in str(info.value)
    return info.value


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


# -- the authorization request ----------------------------------------------------------------------------------------


async def test_authorization_url_carries_every_parameter(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    provider = upstream(idp, http, additional_authorization_params={"prompt": "consent", "hd": "example.com"})
    challenge = challenge_of(VERIFIER)

    url = await provider.authorization_url(
        state="st.0", code_challenge=challenge, nonce=NONCE, redirect_uri=REDIRECT_URI
    )

    assert url.startswith(f"{idp.base}/authorize?")
    assert query_of(url) == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile offline_access",
        "state": "st.0",
        "nonce": NONCE,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "consent",
        "hd": "example.com",
    }
    assert "%20" in url  # scopes joined by a space


async def test_authorization_url_keeps_the_endpoints_own_query_and_adds_openid(
    idp: FakeIdP, http: GuardedHTTPClient
) -> None:
    idp.metadata["authorization_endpoint"] = f"{idp.base}/authorize?p=b2c_signin"
    provider = upstream(idp, http, scopes=("email",))

    url = await provider.authorization_url(state="s", code_challenge="c" * 43, nonce=NONCE, redirect_uri=REDIRECT_URI)

    assert query_of(url)["p"] == "b2c_signin"
    assert query_of(url)["scope"] == "openid email"


async def test_discovery_is_fetched_once(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    provider = upstream(idp, http)
    for _ in range(3):
        await provider.authorization_url(state="s", code_challenge="c" * 43, nonce=NONCE, redirect_uri=REDIRECT_URI)
    await login(idp, provider)
    assert len(idp.seen("/.well-known/openid-configuration")) == 1


# -- the code exchange ------------------------------------------------------------------------------------------------


async def test_code_exchange_yields_tokens_and_the_merged_identity(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.userinfo = {"sub": "alice", "name": "Alice Userinfo", "email": "alice@example.com"}
    before = time.time()

    tokens, identity = await login(idp, upstream(idp, http))

    assert tokens.access_token == idp.issued[0]
    assert tokens.refresh_token == idp.issued[1]
    assert tokens.id_token == idp.issued[2]
    assert tokens.token_type == "Bearer"
    assert tokens.scope == "openid offline_access"
    assert tokens.expires_at is not None
    assert before + 3600 <= tokens.expires_at <= time.time() + 3600
    assert identity.subject == "alice"
    assert identity.name == "Alice Userinfo"  # userinfo wins over the ID token
    assert identity.email == "alice@example.com"
    assert identity.claims["groups"] == ["mcp-developers"]  # found only in the ID token, kept
    assert identity.claims["nonce"] == NONCE


async def test_token_request_uses_basic_client_credentials_and_pkce(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    tokens, _ = await login(idp, upstream(idp, http))

    (request,) = idp.seen("/token")
    assert request.form == {
        "grant_type": "authorization_code",
        "code": "good-code",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": VERIFIER,
    }
    # RFC 6749 section 2.3.1: id and secret are form-encoded before Basic encoding
    assert request.headers["Authorization"] == basic("hivegate-upstream", "up+secret%2Fwith%3Aodd%2Bchars")
    assert request.headers["Accept"] == "application/json"
    (info,) = idp.seen("/userinfo")
    assert info.method == "GET"
    assert info.headers["Authorization"] == f"Bearer {tokens.access_token}"


async def test_client_secret_post_when_discovery_offers_only_that(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.metadata["token_endpoint_auth_methods_supported"] = ["client_secret_post", "private_key_jwt"]
    await login(idp, upstream(idp, http))

    (request,) = idp.seen("/token")
    assert "Authorization" not in request.headers
    assert request.form["client_id"] == CLIENT_ID
    assert request.form["client_secret"] == CLIENT_SECRET


async def test_public_client_sends_only_its_id(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    await login(idp, upstream(idp, http, client_secret=None))

    (request,) = idp.seen("/token")
    assert "Authorization" not in request.headers
    assert request.form["client_id"] == CLIENT_ID
    assert "client_secret" not in request.form


async def test_without_a_userinfo_endpoint_the_id_token_alone_names_the_user(
    idp: FakeIdP, http: GuardedHTTPClient
) -> None:
    idp.metadata["userinfo_endpoint"] = None
    _, identity = await login(idp, upstream(idp, http))

    assert identity.subject == "alice"
    assert identity.name == "Alice IdToken"
    assert identity.email is None
    assert idp.seen("/userinfo") == []


async def test_userinfo_override_sets_endpoint_method_headers_and_mapping(
    idp: FakeIdP, http: GuardedHTTPClient
) -> None:
    idp.userinfo = {"login": "alice-login", "mail": "a@corp.example"}  # no `sub`: a non-standard endpoint
    override = UserInfoConfig(
        endpoint_url=f"{idp.base}/user",
        http_method="POST",
        additional_headers={"X-Api-Version": "2022-11-28", "Authorization": "ignored"},
        field_mapping=FieldMapping(name_fields=("display", "login"), email_fields=("mail",)),
    )
    tokens, identity = await login(idp, upstream(idp, http, user_info=override))

    assert identity.subject == "alice"  # always the ID token's
    assert identity.name == "alice-login"
    assert identity.email == "a@corp.example"
    assert idp.seen("/userinfo") == []
    (request,) = idp.seen("/user")
    assert request.method == "POST"
    assert request.headers["X-Api-Version"] == "2022-11-28"
    assert request.headers["Authorization"] == f"Bearer {tokens.access_token}"


async def test_userinfo_naming_another_subject_is_refused(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.userinfo = {"sub": "mallory", "email": "mallory@example.com"}
    error = await refused(idp, upstream(idp, http))
    assert error.error == "server_error"
    assert error.description == "the upstream's userinfo names another user than its ID token"


async def test_userinfo_without_sub_is_refused_at_the_standard_endpoint(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.userinfo = {"email": "alice@example.com"}
    error = await refused(idp, upstream(idp, http))
    assert error.description == "the upstream's userinfo names another user than its ID token"


async def test_a_discovered_userinfo_refusing_the_token_leaves_the_id_token_to_name_the_user(
    idp: FakeIdP, http: GuardedHTTPClient, caplog: pytest.LogCaptureFixture
) -> None:
    # an access token minted for another resource (RFC 8707) is refused by the provider's own userinfo endpoint
    idp.userinfo_status = 401
    _, identity = await login(idp, upstream(idp, http))
    assert identity.subject == "alice"
    assert identity.name == "Alice IdToken"
    assert any("userinfo not available" in r.getMessage() for r in caplog.records)
    assert not any(token in r.getMessage() for r in caplog.records for token in idp.issued)


async def test_a_configured_userinfo_refusing_the_token_is_a_server_error(
    idp: FakeIdP, http: GuardedHTTPClient
) -> None:
    idp.userinfo_status = 401
    configured = UserInfoConfig(endpoint_url=f"{idp.base}/userinfo")
    error = await refused(idp, upstream(idp, http, user_info=configured))
    assert error.error == "server_error"
    assert error.description == "the userinfo endpoint refused the access token (HTTP 401)"


async def test_an_answer_without_an_id_token_is_refused(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.token_reply = (200, "application/json", b'{"access_token": "at-secret-123", "token_type": "Bearer"}')
    error = await refused(idp, upstream(idp, http))
    assert error.error == "server_error"
    assert "without an ID token" in error.description
    assert "at-secret-123" not in str(error)


# -- ID-token validation ----------------------------------------------------------------------------------------------


def _forged(idp: FakeIdP, signing_key: RSAKey, case: str) -> str | dict[str, Any]:
    """An ID token (str) or claim changes (dict) that must be refused."""
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": CLIENT_ID, "sub": "mallory", "iat": now, "exp": now + 300, "nonce": NONCE}
    if case == "bad-signature":
        other = RSAKey.generate_key(2048, parameters={"kid": str(signing_key.kid)})
        return jwt.encode({"alg": "RS256", "kid": signing_key.kid}, claims, other)
    if case == "alg-none":
        return unsigned({"alg": "none", "kid": signing_key.kid}, claims) + "."
    if case == "hs256":  # HMAC keyed with the IdP's public key: the key-confusion attack
        signing_input = unsigned({"alg": "HS256", "kid": signing_key.kid}, claims)
        mac = hmac.new(signing_key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"
    changes: dict[str, dict[str, Any]] = {
        "wrong-iss": {"iss": "https://evil.example"},
        "wrong-aud": {"aud": "someone-else"},
        "several-aud-no-azp": {"aud": [CLIENT_ID, "someone-else"]},
        "wrong-azp": {"azp": "someone-else"},
        "expired": {"exp": now - 120, "iat": now - 600},
        "issued-in-future": {"iat": now + 600, "exp": now + 900},
        "no-exp": {"exp": None},
        "no-sub": {"sub": None},
        "nonce-mismatch": {"nonce": "another-login"},
        "no-nonce": {"nonce": None},
    }
    return changes[case]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("bad-signature", "invalid token signature"),
        ("alg-none", "token algorithm 'none' is not allowed"),
        ("hs256", "token algorithm 'HS256' is not allowed"),
        ("wrong-iss", "its issuer ('iss') is not the upstream's"),
        ("wrong-aud", "its audience ('aud') does not include our client id"),
        ("several-aud-no-azp", "its authorized party ('azp') is not our client id"),
        ("wrong-azp", "its authorized party ('azp') is not our client id"),
        ("expired", "it has expired"),
        ("issued-in-future", "it was issued in the future ('iat')"),
        ("no-exp", "it has no 'exp' or no 'iat'"),
        ("no-sub", "it has no subject ('sub')"),
        ("nonce-mismatch", "its nonce does not match the login's"),
        ("no-nonce", "its nonce does not match the login's"),
    ],
)
async def test_invalid_id_tokens_are_refused(
    idp: FakeIdP, http: GuardedHTTPClient, signing_key: RSAKey, case: str, reason: str
) -> None:
    forged = _forged(idp, signing_key, case)
    if isinstance(forged, str):
        idp.id_token = forged
    else:
        idp.id_claims = forged

    error = await refused(idp, upstream(idp, http))

    assert error.error == "server_error"
    assert error.description.startswith(f"the upstream's ID token is not valid: {reason}")
    assert idp.seen("/userinfo") == []


async def test_clock_skew_of_a_minute_is_tolerated(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    now = int(time.time())
    idp.id_claims = {"exp": now - 30, "iat": now + 30}
    _, identity = await login(idp, upstream(idp, http))
    assert identity.subject == "alice"


async def test_several_audiences_with_our_azp_are_accepted(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.id_claims = {"aud": [CLIENT_ID, "https://api.example"], "azp": CLIENT_ID}
    _, identity = await login(idp, upstream(idp, http))
    assert identity.subject == "alice"


async def test_an_unsafe_discovered_endpoint_is_refused(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.metadata["token_endpoint"] = "http://token.example.com/token"  # http off loopback
    with pytest.raises(UpstreamError) as info:
        await login(idp, upstream(idp, http))
    assert info.value.error == "server_error"
    assert info.value.description == "the upstream's token_endpoint is not an https URL"


# -- token endpoint errors and outages --------------------------------------------------------------------------------


async def test_token_endpoint_error_keeps_its_code_and_description(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    with pytest.raises(UpstreamError) as info:
        await login(idp, upstream(idp, http), code="stale-code")
    assert info.value.error == "invalid_grant"
    assert info.value.description == "The code has expired"


async def test_token_endpoint_gateway_error_is_a_server_error(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.token_reply = (502, "text/html", b"<html><body>Bad Gateway</body></html>")
    with pytest.raises(UpstreamError) as info:
        await login(idp, upstream(idp, http))
    assert info.value.error == "server_error"
    assert "HTTP 502" in info.value.description


async def test_discovery_unreachable_is_temporarily_unavailable(http: GuardedHTTPClient, idp: FakeIdP) -> None:
    provider = OIDCUpstream(
        config(idp, issuer_url="http://127.0.0.1:1"),
        http,
        discovery=OIDCDiscovery(http, "http://127.0.0.1:1", attempts=1),
    )
    with pytest.raises(UpstreamError) as info:
        await provider.authorization_url(state="s", code_challenge="c" * 43, nonce=NONCE, redirect_uri=REDIRECT_URI)
    assert info.value.error == "temporarily_unavailable"
    assert info.value.description == "the upstream's discovery document is unavailable"


async def test_discovery_naming_another_issuer_is_a_server_error(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.metadata["issuer"] = "https://other.example"
    with pytest.raises(UpstreamError) as info:
        await login(idp, upstream(idp, http))
    assert info.value.error == "server_error"
    assert "another issuer" in info.value.description


async def test_token_endpoint_unreachable_is_temporarily_unavailable(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.metadata["token_endpoint"] = "http://127.0.0.1:1/token"
    with pytest.raises(UpstreamError) as info:
        await login(idp, upstream(idp, http))
    assert info.value.error == "temporarily_unavailable"
    assert info.value.description == "cannot reach the token endpoint"


# -- refresh ----------------------------------------------------------------------------------------------------------


async def test_refresh_with_rotation_returns_the_new_refresh_token(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    provider = upstream(idp, http)
    tokens, _ = await login(idp, provider)
    assert tokens.refresh_token is not None
    idp.nonce = None  # a refreshed ID token need not carry the nonce

    fresh, identity = await provider.refresh(tokens.refresh_token)

    assert identity is not None
    assert identity.subject == "alice"
    assert fresh.access_token not in (tokens.access_token, None)
    assert fresh.refresh_token not in (tokens.refresh_token, None)
    assert fresh.refresh_token == idp.issued[-2]
    assert fresh.id_token == idp.issued[-1]
    assert idp.seen("/token")[-1].form == {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}


async def test_a_refreshed_id_token_says_who_the_user_is_now(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    provider = upstream(idp, http)
    tokens, _ = await login(idp, provider)
    assert tokens.refresh_token is not None
    idp.nonce = None
    idp.id_claims = {"groups": ["mcp-admins"], "roles": ["owner"]}
    idp.userinfo = {"sub": "alice", "email": "alice@new.example"}

    _, identity = await provider.refresh(tokens.refresh_token)

    assert identity is not None
    assert identity.claims["groups"] == ["mcp-admins"]
    assert identity.claims["roles"] == ["owner"]
    assert identity.email == "alice@new.example"  # userinfo merged over the ID token, as at login
    assert identity.name == "Alice IdToken"


async def test_a_refresh_whose_userinfo_fails_keeps_the_tokens_and_the_claims(
    idp: FakeIdP, http: GuardedHTTPClient
) -> None:
    provider = upstream(idp, http)
    tokens, _ = await login(idp, provider)
    assert tokens.refresh_token is not None
    idp.nonce = None
    idp.userinfo = {"sub": "mallory"}

    fresh, identity = await provider.refresh(tokens.refresh_token)

    assert fresh.access_token != tokens.access_token
    assert identity is None


async def test_refresh_without_rotation_keeps_the_refresh_token(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    idp.rotate = False
    idp.refresh_id_token = False
    provider = upstream(idp, http)
    tokens, _ = await login(idp, provider)
    assert tokens.refresh_token is not None

    fresh, identity = await provider.refresh(tokens.refresh_token)

    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token == tokens.refresh_token
    assert fresh.id_token is None
    assert identity is None  # no new ID token: nothing new about the user


async def test_refresh_validates_a_new_id_token(idp: FakeIdP, http: GuardedHTTPClient) -> None:
    provider = upstream(idp, http)
    tokens, _ = await login(idp, provider)
    assert tokens.refresh_token is not None
    idp.id_claims = {"aud": "someone-else"}

    with pytest.raises(UpstreamError) as info:
        await provider.refresh(tokens.refresh_token)

    assert (
        info.value.description
        == "the upstream's ID token is not valid: its audience ('aud') does not include our client id"
    )
    for token in idp.issued:
        assert token not in str(info.value)
