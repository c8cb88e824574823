"""Which upstream JWTs are ID tokens (`grants.subject_token.is_id_token`), on the shapes real identity providers give
their tokens, and whom an access token is meant for (`AudienceRule`)."""

from __future__ import annotations

from typing import Any

import pytest

from hivegate.authserver.grants.subject_token import AudienceRule, is_id_token

JWT = {"alg": "RS256", "kid": "k", "typ": "JWT"}
BARE = {"alg": "RS256", "kid": "k"}
AT_JWT = {"alg": "RS256", "kid": "k", "typ": "at+jwt"}
TIMES = {"iss": "https://idp.example", "sub": "alice", "iat": 1, "exp": 2}

# (provider, header, claims): what each issues, trimmed to the claims that tell the kinds apart
ACCESS_TOKENS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("oidc-provider", AT_JWT, {"aud": "https://api.example", "client_id": "web", "scope": "openid"}),
    # Keycloak: `azp` and, before Keycloak 24, a `nonce`; its own `typ` claim says Bearer
    ("keycloak", JWT, {"typ": "Bearer", "azp": "web", "aud": ["account"], "nonce": "n", "scope": "openid email"}),
    ("keycloak, no scope", JWT, {"typ": "Bearer", "azp": "web", "aud": "account"}),
    ("okta", BARE, {"ver": 1, "aud": "api://default", "cid": "0oa1", "uid": "00u1", "scp": ["openid"]}),
    ("entra v2", JWT, {"ver": "2.0", "aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "azp": "web-guid", "scp": "read"}),
    ("entra v1", JWT, {"ver": "1.0", "aud": "https://graph.microsoft.com", "appid": "web-guid", "roles": ["r"]}),
    ("auth0", JWT, {"aud": ["https://api.example", "https://t.auth0.com/userinfo"], "azp": "web", "scope": "x"}),
    ("cognito", BARE, {"token_use": "access", "client_id": "web", "scope": "aws.cognito.signin.user.admin"}),
    ("no marker, API by URL", BARE, {"aud": "https://api.example"}),
]
ID_TOKENS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("oidc-provider", BARE, {"aud": "web", "nonce": "n"}),
    ("keycloak", JWT, {"typ": "ID", "aud": "web", "azp": "web", "at_hash": "h"}),
    ("okta", BARE, {"ver": 1, "aud": "0oa1", "amr": ["pwd"], "at_hash": "h", "nonce": "n"}),
    ("entra v2, no nonce", JWT, {"ver": "2.0", "aud": "web-guid", "oid": "o", "tid": "t"}),
    ("auth0", JWT, {"aud": "web", "nonce": "n", "sid": "s"}),
    ("cognito", BARE, {"token_use": "id", "aud": "web", "cognito:groups": ["g"]}),
    ("google", BARE, {"aud": "server.apps.googleusercontent.com", "azp": "android.apps.googleusercontent.com"}),
    ("hybrid flow", BARE, {"aud": "https://client.example", "c_hash": "h"}),
    ("explicitly typed", {"alg": "RS256", "kid": "k", "typ": "id_token+jwt"}, {"aud": "https://client.example"}),
]


@pytest.mark.parametrize(("provider", "header", "claims"), ACCESS_TOKENS, ids=[t[0] for t in ACCESS_TOKENS])
def test_access_tokens_are_not_taken_for_id_tokens(provider: str, header: dict[str, Any], claims: Any) -> None:
    assert not is_id_token(header, {**TIMES, **claims})


@pytest.mark.parametrize(("provider", "header", "claims"), ID_TOKENS, ids=[t[0] for t in ID_TOKENS])
def test_id_tokens_are_recognised(provider: str, header: dict[str, Any], claims: Any) -> None:
    assert is_id_token(header, {**TIMES, **claims})


def test_an_explicit_access_token_type_wins_over_id_token_claims() -> None:
    assert not is_id_token(AT_JWT, {**TIMES, "aud": "web", "nonce": "n"})  # RFC 9068: typ is what the issuer says


RULE = AudienceRule("hivegate-as", ("https://accepted.example", "api-guid"))


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "hivegate-as"},
        {"aud": ["https://other.example", "https://accepted.example"]},
        {"aud": "api-guid"},
        {"aud": "account", "azp": "hivegate-as"},  # obtained by this server's client (Keycloak)
        {"aud": "https://other.example", "client_id": "hivegate-as"},  # RFC 9068
        {"aud": "api://default", "cid": "hivegate-as"},  # Okta
    ],
)
def test_access_tokens_meant_for_this_server(claims: dict[str, Any]) -> None:
    assert RULE.refusal(claims) is None


@pytest.mark.parametrize(
    ("claims", "shown"),
    [
        ({"aud": "https://other.example", "client_id": "other-app"}, "aud 'https://other.example';"),
        ({"aud": ["a", "b", "c", "d"], "azp": "other-app"}, "aud 'a', 'b', 'c', …;"),
        ({"client_id": "other-app"}, "aud none;"),
        ({"aud": "x" * 500}, f"aud '{'x' * 60}';"),
        ({"aud": "HIVEGATE-AS"}, "aud 'HIVEGATE-AS';"),  # compared exactly
    ],
)
def test_access_tokens_for_others_are_refused_naming_their_audience(claims: dict[str, Any], shown: str) -> None:
    refusal = RULE.refusal(claims)
    assert refusal is not None
    assert refusal.startswith(f"the subject token is not meant for this server ({shown}")
    assert "'hivegate-as'" in refusal
    assert "tokenExchange.acceptedAudiences" in refusal
