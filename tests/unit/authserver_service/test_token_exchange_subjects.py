"""RFC 8693 token exchange: an upstream subject token must be meant for this server, an ID token is recognised by
what it is whatever the caller labels it, and every refusal is logged, boundedly, without the token."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from test_token_exchange import ACCESS, API, ID_TOKEN, IDP, ISSUER, TrustedIdP, claims_of, exchange, sts

from hivegate.authserver.errors import OAuthError

pytestmark = pytest.mark.anyio

JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
LABELS = (ACCESS, JWT_TYPE, ID_TOKEN)


async def refusal(idp: TrustedIdP, **form: str) -> OAuthError:
    with pytest.raises(OAuthError) as refused:
        await exchange(sts(idp), **form)
    return refused.value


async def test_an_access_token_for_another_audience_is_refused() -> None:
    idp = TrustedIdP()
    token = idp.token(header={"typ": "at+jwt"}, aud="https://payments.example", client_id="other-app", scope="openid")
    refused = await refusal(idp, subject_token=token)
    assert refused.error == "invalid_grant"
    assert refused.description == (
        "the subject token is not meant for this server (aud 'https://payments.example'; expected our client "
        "'sts-client' at the upstream or one of its tokenExchange.acceptedAudiences)"
    )
    idp.accepted_audiences = ("https://payments.example",)  # the same token, once its audience is accepted
    s = sts(idp)
    answer = await exchange(s, subject_token=token)
    assert claims_of(s, answer["access_token"])["sub"] == "alice"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "sts-client"},
        {"aud": ["https://x.example", "sts-client"]},
        {"azp": "sts-client"},
        {"client_id": "sts-client"},
    ],
)
async def test_an_access_token_meant_for_or_obtained_by_our_client_is_exchanged(claims: dict[str, object]) -> None:
    idp = TrustedIdP(accepted=())
    token = idp.token(**{"aud": "https://x.example", "scope": "openid", **claims})
    answer = await exchange(sts(idp), subject_token=token)
    assert answer["scope"] == "openid"


@pytest.mark.parametrize("label", LABELS)
async def test_an_id_token_of_another_client_is_refused_whatever_its_label(label: str) -> None:
    idp = TrustedIdP(accepted=(API, "other-app"))  # even with its audience accepted for access tokens
    id_token = idp.token(aud="other-app", nonce="n-1")
    refused = await refusal(idp, subject_token=id_token, subject_token_type=label)
    assert refused.error == "invalid_grant"
    assert refused.description == (
        "the subject token is an ID token not valid for this server (its audience ('aud') does not include our "
        "client id): only ID tokens issued to our client 'sts-client' at the upstream are exchanged"
    )


@pytest.mark.parametrize("label", LABELS)
async def test_an_id_token_of_our_client_is_exchanged_whatever_its_label(label: str) -> None:
    idp = TrustedIdP()
    s = sts(idp)
    answer = await exchange(s, subject_token=idp.token(aud="sts-client", nonce="n-1"), subject_token_type=label)
    assert claims_of(s, answer["access_token"])["sub"] == "alice"


async def test_an_id_token_of_ours_authorized_for_another_party_is_refused() -> None:
    idp = TrustedIdP()
    refused = await refusal(idp, subject_token=idp.token(aud=["sts-client", "other-app"], azp="other-app"))
    assert refused.error == "invalid_grant"
    assert "its authorized party ('azp') is not our client id" in refused.description


@pytest.mark.parametrize("shape", [{"header": {"typ": "at+jwt"}}, {"scope": "openid"}, {"client_id": "sts-client"}])
async def test_an_access_token_labelled_id_token_is_refused(shape: dict[str, Any]) -> None:
    idp = TrustedIdP()
    refused = await refusal(idp, subject_token=idp.token(**shape), subject_token_type=ID_TOKEN)
    assert refused.error == "invalid_request"
    assert refused.description == "subject_token_type is id_token, but the subject token is an access token"


async def test_its_own_access_token_labelled_id_token_is_refused() -> None:
    idp = TrustedIdP()
    s = sts(idp)
    own = (await exchange(s, subject_token=idp.token()))["access_token"]
    with pytest.raises(OAuthError) as refused:
        await exchange(s, subject_token=own, subject_token_type=ID_TOKEN)
    assert refused.value.error == "invalid_request"


async def test_a_refusal_is_logged_with_client_and_subject_never_the_token(caplog: pytest.LogCaptureFixture) -> None:
    idp = TrustedIdP()
    s = sts(idp)
    caplog.set_level(logging.INFO, logger="hivegate.authserver")
    foreign = idp.token(aud="https://payments.example")
    with pytest.raises(OAuthError):
        await exchange(s, subject_token=foreign)
    with pytest.raises(OAuthError):
        await exchange(s, subject_token=idp.token(), audience="https://unknown.example/mcp")  # before verification
    with pytest.raises(OAuthError):
        await exchange(s, subject_token=idp.token(scope="openid"), scope="email")
    lines = [r for r in caplog.records if r.name == "hivegate.authserver"]
    assert [(r.levelno, r.getMessage()) for r in lines] == [
        (
            logging.WARNING,
            "token exchange refused: client 'gateway-a', subject sub='alice': invalid_grant: the subject token is not "
            "meant for this server (aud 'https://payments.example'; expected our client 'sts-client' at the upstream "
            "or one of its tokenExchange.acceptedAudiences)",
        ),
        (
            logging.WARNING,
            f"token exchange refused: client 'gateway-a', subject iss={IDP!r} (unverified): invalid_target: this "
            "server does not issue tokens for that audience",
        ),
        (
            logging.WARNING,
            "token exchange refused: client 'gateway-a', subject sub='alice': invalid_scope: scope 'email' is not held "
            "by the subject token",
        ),
    ]
    assert foreign not in caplog.text
    assert foreign.split(".")[1] not in caplog.text


async def test_a_flood_of_refusals_is_logged_at_a_bounded_rate(caplog: pytest.LogCaptureFixture) -> None:
    idp = TrustedIdP()
    s = sts(idp)
    caplog.set_level(logging.INFO, logger="hivegate.authserver")
    token = idp.token()
    for _ in range(200):
        with pytest.raises(OAuthError):
            await exchange(s, subject_token=token, audience="https://unknown.example/mcp")
    written = [r for r in caplog.records if r.name == "hivegate.authserver"]
    assert 20 <= len(written) < 40  # a burst of 20, then 5 a second
    assert all(ISSUER not in r.getMessage() for r in written)
