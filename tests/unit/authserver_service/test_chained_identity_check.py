"""Chained upstreams: every leg after the first must be the first leg's user, by verified email, or is refused
(`access_denied` naming the upstream), unless its upstream opts out with `identityCheck: none`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from authserver_fakes import ISSUER, Upstream, claims_of, login, redeem, server

from hivegate.authserver.secrets import SecretResolver
from hivegate.authserver.settings import parse_auth_server_config
from hivegate.errors import ConfigError

pytestmark = pytest.mark.anyio


async def test_a_chained_leg_without_an_email_is_refused_naming_the_upstream(caplog: pytest.LogCaptureFixture) -> None:
    answer = await login(server(Upstream("okta"), Upstream("github", email=None, subject="12345")), 2)
    assert answer["error"] == "access_denied"
    assert answer["error_description"] == "github: gave no verified email to check this is the user signed in at okta"
    assert answer["state"] == "st"
    assert answer["iss"] == ISSUER
    assert "code" not in answer
    assert any(r.levelname == "WARNING" and "'github' login refused" in r.getMessage() for r in caplog.records)


async def test_identity_check_none_links_a_leg_without_an_email() -> None:
    github = Upstream("github", email=None, subject="12345", identity_check="none")
    s = server(Upstream("okta"), github)
    answer = await login(s, 2)
    assert "error" not in answer
    claims = claims_of(s.keys.jwks(), (await redeem(s, answer["code"]))["access_token"])
    assert claims["sub"] == "user-1"  # the first upstream's user
    assert claims["email"] == "alice@example.com"
    assert await s.upstream_tokens(claims["tsid"], "github") is not None


async def test_identity_check_none_links_without_comparing_at_all() -> None:
    # e.g. a GitHub account with a personal public email behind a corporate login: the operator vouches for it
    github = Upstream("github", email="alice@personal.example", identity_check="none")
    assert "code" in await login(server(Upstream("okta", email="alice@corp.example"), github), 2)


async def test_a_chained_leg_with_another_email_is_refused() -> None:
    answer = await login(server(Upstream("okta"), Upstream("github", email="mallory@example.com")), 2)
    assert answer["error"] == "access_denied"
    assert answer["error_description"] == "github: signed in as a different user"


async def test_a_chained_leg_with_the_same_email_in_another_case_is_accepted() -> None:
    s = server(Upstream("okta", email="Alice@Example.COM"), Upstream("github", email=" alice@example.com", subject="9"))
    answer = await login(s, 2)
    claims = claims_of(s.keys.jwks(), (await redeem(s, answer["code"]))["access_token"])
    assert claims["sub"] == "user-1"
    assert claims["email"] == "Alice@Example.COM"


async def test_every_later_leg_is_checked_against_the_first() -> None:
    first, same = Upstream("okta", email="a@x.example"), Upstream("gh", email="A@X.example")
    assert "code" in await login(server(first, same, Upstream("gl", email="a@x.example")), 3)
    answer = await login(server(first, same, Upstream("gl", email="b@x.example")), 3)
    assert answer["error_description"] == "gl: signed in as a different user"


@pytest.mark.parametrize("verified", [False, "false", "FALSE"])
async def test_an_email_its_upstream_marks_unverified_is_not_trusted(verified: object) -> None:
    second = Upstream("github", claims={"email_verified": verified})
    answer = await login(server(Upstream("okta"), second), 2)
    assert answer["error"] == "access_denied"
    assert answer["error_description"].startswith("github: gave no verified email")
    first = Upstream("okta", claims={"email_verified": verified})
    answer = await login(server(first, Upstream("github")), 2)
    assert answer["error"] == "access_denied"
    assert answer["error_description"] == "github: cannot be checked: okta gave no verified email"


@pytest.mark.parametrize("verified", [True, "true", None])
async def test_an_email_not_marked_unverified_is_trusted(verified: object) -> None:
    claims = {} if verified is None else {"email_verified": verified}  # plain OAuth 2.0 userinfo often has none
    s = server(Upstream("okta", claims={"email_verified": True}), Upstream("github", claims=claims))
    assert "code" in await login(s, 2)


async def test_a_first_leg_without_an_email_cannot_vouch_for_a_checked_leg() -> None:
    answer = await login(server(Upstream("okta", email=None), Upstream("github")), 2)
    assert answer["error"] == "access_denied"
    assert answer["error_description"] == "github: cannot be checked: okta gave no verified email"


async def test_a_single_upstream_without_an_email_needs_no_check() -> None:
    assert "code" in await login(server(Upstream("okta", email=None)), 1)


# -- configuration -----------------------------------------------------------------------------------------------------


def spec(**second: Any) -> dict[str, Any]:
    oidc = {"clientId": "c", "issuerUrl": "https://idp.example.com"}
    return {
        "issuer": ISSUER,
        "upstreamProviders": [
            {"name": "okta", "type": "oidc", "oidcConfig": oidc},
            {"name": "github", "type": "oidc", "oidcConfig": oidc, **second},
        ],
    }


def test_identity_check_defaults_to_email_and_can_be_turned_off_per_upstream(tmp_path: Path) -> None:
    resolver = SecretResolver(base_dir=tmp_path)
    default = parse_auth_server_config(spec(), resolver=resolver)
    assert [u.identity_check for u in default.upstreams] == ["email", "email"]
    off = parse_auth_server_config(spec(identityCheck="none"), resolver=resolver)
    assert [u.identity_check for u in off.upstreams] == ["email", "none"]
    explicit = parse_auth_server_config(spec(identityCheck="email"), resolver=resolver)
    assert explicit.upstreams[1].identity_check == "email"


def test_bad_identity_checks_are_one_line_errors_naming_the_path(tmp_path: Path) -> None:
    resolver = SecretResolver(base_dir=tmp_path)
    with pytest.raises(ConfigError) as bad:
        parse_auth_server_config(spec(identityCheck="subject"), resolver=resolver)
    assert str(bad.value) == (
        "embeddedAuthServer.upstreamProviders[1].identityCheck: must be one of email, none, got 'subject'"
    )
    first_off = spec()
    first_off["upstreamProviders"][0]["identityCheck"] = "none"
    with pytest.raises(ConfigError) as first:
        parse_auth_server_config(first_off, resolver=resolver)
    assert str(first.value).startswith("embeddedAuthServer.upstreamProviders[0].identityCheck: ")
    assert "\n" not in str(first.value)
