"""The authorization server's flow logic with in-memory parts: one fake upstream, a memory store, fixed clients."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from hivegate.authserver.clients import Client
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.pkce import challenge_of
from hivegate.authserver.service import REFRESH_GRACE, AuthorizationServer, Consent, ErrorPage, Params, Redirect
from hivegate.authserver.settings import AuthServerConfig, Lifespans, UpstreamConfig
from hivegate.authserver.upstream.base import UpstreamError, UpstreamIdentity, UpstreamTokens
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

ISSUER = "https://mcp.example.com"
RESOURCE = "https://mcp.example.com/mcp"
APP = "http://127.0.0.1:33418/callback"


@dataclass
class FakeUpstream:
    name: str
    subject: str = "00u-alice"
    email: str | None = "alice@example.com"
    claims: dict[str, Any] = field(default_factory=lambda: {"groups": ["mcp-developers"]})
    fail: UpstreamError | None = None
    seen: list[dict[str, str]] = field(default_factory=list)
    refreshed: int = 0

    async def authorization_url(self, *, state: str, code_challenge: str, nonce: str, redirect_uri: str) -> str:
        self.seen.append({"state": state, "code_challenge": code_challenge, "nonce": nonce})
        return f"https://{self.name}.example/authorize?state={state}"

    async def exchange_code(
        self, code: str, *, code_verifier: str, nonce: str, redirect_uri: str
    ) -> tuple[UpstreamTokens, UpstreamIdentity]:
        if self.fail is not None:
            raise self.fail
        assert challenge_of(code_verifier) == self.seen[-1]["code_challenge"]
        assert nonce == self.seen[-1]["nonce"]
        tokens = UpstreamTokens(f"{self.name}-access", refresh_token=f"{self.name}-refresh", expires_at=time.time() + 5)
        identity = UpstreamIdentity(self.subject, "Alice", self.email, {"sub": self.subject, **self.claims})
        return tokens, identity

    async def refresh(self, refresh_token: str) -> tuple[UpstreamTokens, UpstreamIdentity | None]:
        self.refreshed += 1
        return UpstreamTokens(f"{self.name}-access-{self.refreshed}", refresh_token=refresh_token,
                              expires_at=time.time() + 3600), None  # fmt: skip

    async def aclose(self) -> None:
        pass


class Clients:
    def __init__(self, *clients: Client) -> None:
        self._clients = {c.client_id: c for c in clients}

    async def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    async def register(self, metadata: Any, *, remote: str) -> tuple[Client, dict[str, Any]]:
        raise NotImplementedError


DYNAMIC = Client("dyn-1", (APP,), "dynamic", client_name="Claude")
STATIC = Client("static-1", (APP,), "static")


def server(*upstreams: FakeUpstream, consent: bool = True, clients: Clients | None = None) -> AuthorizationServer:
    ups = upstreams or (FakeUpstream("okta"),)
    cfg = AuthServerConfig(
        issuer=ISSUER,
        upstreams=tuple(UpstreamConfig(u.name, "oidc", "cid", issuer_url="https://idp.example") for u in ups),
        require_consent=consent,
        lifespans=Lifespans(),
    )
    return AuthorizationServer(
        cfg,
        keys=SigningKeys.from_pems([]),
        hmac_keys=HMACKeys.from_config([b"k" * 32]),
        store=MemoryStore(),
        clients=clients or Clients(DYNAMIC, STATIC),
        upstreams=ups,
        audiences=[RESOURCE],
    )


def authorize_params(client: str = "dyn-1", verifier: str = "v" * 50, **over: str) -> Params:
    values = {
        "response_type": "code",
        "client_id": client,
        "redirect_uri": APP,
        "state": "client-state",
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
        "scope": "openid email",
        "resource": RESOURCE,
        **over,
    }
    return Params({k: [v] for k, v in values.items() if v != "<absent>"})


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def login(
    s: AuthorizationServer, ups: list[FakeUpstream], *, client: str = "dyn-1", verifier: str = "v" * 50, **over: str
) -> dict[str, str]:
    """Drive a whole login in browser `b-1`; the final redirect's query."""
    outcome = await s.authorize(authorize_params(client, verifier, **over), "b-1")
    if isinstance(outcome, Consent):
        outcome = await s.consent(Params.of(login=outcome.login, csrf=outcome.csrf, decision="allow"), "b-1")
    for upstream in ups:
        assert isinstance(outcome, Redirect)
        state = query(outcome.url)["state"]
        assert outcome.url.startswith(f"https://{upstream.name}.example/")
        outcome = await s.callback(Params.of(state=state, code="upstream-code"), "b-1")
    assert isinstance(outcome, Redirect)
    return query(outcome.url)


async def exchange(s: AuthorizationServer, code: str, verifier: str = "v" * 50, **over: str) -> dict[str, Any]:
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "client_id": "dyn-1",
            "redirect_uri": APP, **over}  # fmt: skip
    return await s.token(Params({k: [v] for k, v in form.items()}), None)


def claims_of(s: AuthorizationServer, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(s.keys.jwks())
    return dict(jwt.decode(token, keys).claims)


async def test_the_whole_flow_issues_a_token_for_the_resource_with_the_users_groups() -> None:
    up = FakeUpstream("okta")
    s = server(up)
    answer = await login(s, [up])
    assert answer["state"] == "client-state"
    assert answer["iss"] == ISSUER  # RFC 9207
    tokens = await exchange(s, answer["code"])
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    claims = claims_of(s, tokens["access_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == RESOURCE
    assert claims["sub"] == "00u-alice"
    assert claims["groups"] == ["mcp-developers"]
    assert claims["email"] == "alice@example.com"
    assert claims["client_id"] == "dyn-1"
    assert claims["scope"] == "openid email"
    assert tokens["refresh_token"].startswith("hgr_")
    stored = await s.upstream_tokens(claims["tsid"], "okta")
    assert stored is not None
    assert stored.access_token.startswith("okta-access")


async def test_unknown_client_and_wrong_redirect_uri_are_pages_never_redirects() -> None:
    s = server()
    unknown = await s.authorize(authorize_params("nobody"), "b-1")
    assert isinstance(unknown, ErrorPage)
    assert unknown.status == 400
    for bad in ("http://127.0.0.1:33418/callback/../evil", "https://evil.example/cb", APP + "?x=1", APP.upper()):
        outcome = await s.authorize(authorize_params(redirect_uri=bad), "b-1")
        assert isinstance(outcome, ErrorPage), bad
    repeated = Params({**{k: [v] for k, v in {"client_id": "dyn-1"}.items()}, "redirect_uri": [APP, APP]})
    assert isinstance(await s.authorize(repeated, "b-1"), ErrorPage)


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"code_challenge": "<absent>"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": "<absent>"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"resource": "https://other.example.com/mcp"}, "invalid_target"),
        ({"resource": "https://mcp.example.com/mcp#frag"}, "invalid_target"),
    ],
)
async def test_bad_authorization_requests_are_redirected_with_the_error(over: dict[str, str], error: str) -> None:
    outcome = await server().authorize(authorize_params(**over), "b-1")
    assert isinstance(outcome, Redirect)
    answer = query(outcome.url)
    assert outcome.url.startswith(APP + "?")
    assert answer["error"] == error
    assert answer["state"] == "client-state"
    assert answer["iss"] == ISSUER


async def test_state_is_optional_and_returned_only_when_sent() -> None:
    # OAuth 2.1 section 7.5.1: with PKCE, state is not needed against CSRF; the TypeScript SDK sends none
    up = FakeUpstream("okta")
    s = server(up)
    answer = await login(s, [up], state="<absent>")
    assert "state" not in answer
    assert (await exchange(s, answer["code"]))["token_type"] == "Bearer"
    assert (await login(s, [up]))["state"] == "client-state"
    repeated = Params({**authorize_params()._values, "state": ["a", "b"]})
    refused = await s.authorize(repeated, "b-1")
    assert isinstance(refused, Redirect)
    assert query(refused.url)["error"] == "invalid_request"


async def test_two_resources_are_refused() -> None:
    s = server()
    params = authorize_params()
    two = Params({**params._values, "resource": [RESOURCE, "https://mcp.example.com/other"]})
    outcome = await s.authorize(two, "b-1")
    assert isinstance(outcome, Redirect)
    assert query(outcome.url)["error"] == "invalid_target"


async def test_consent_is_bound_to_the_browser_and_its_csrf_token() -> None:
    s = server()
    consent = await s.authorize(authorize_params(), "b-1")
    assert isinstance(consent, Consent)
    stolen = await s.consent(Params.of(login=consent.login, csrf=consent.csrf, decision="allow"), "b-attacker")
    assert isinstance(stolen, ErrorPage)
    assert stolen.status == 403
    forged = await s.consent(Params.of(login=consent.login, csrf="0" * 64, decision="allow"), "b-1")
    assert isinstance(forged, ErrorPage)
    no_cookie = await s.consent(Params.of(login=consent.login, csrf=consent.csrf, decision="allow"), None)
    assert isinstance(no_cookie, ErrorPage)
    denied = await s.consent(Params.of(login=consent.login, csrf=consent.csrf, decision="deny"), "b-1")
    assert isinstance(denied, Redirect)
    assert query(denied.url)["error"] == "access_denied"
    again = await s.consent(Params.of(login=consent.login, csrf=consent.csrf, decision="allow"), "b-1")
    assert isinstance(again, ErrorPage)  # a denied login is gone


async def test_static_clients_skip_consent_and_consent_can_be_turned_off() -> None:
    assert isinstance(await server().authorize(authorize_params("static-1"), "b-1"), Redirect)
    assert isinstance(await server(consent=False).authorize(authorize_params(), "b-1"), Redirect)


async def test_a_callback_in_another_browser_or_replayed_is_refused() -> None:
    up = FakeUpstream("okta")
    s = server(up, consent=False)
    outcome = await s.authorize(authorize_params(), "b-1")
    assert isinstance(outcome, Redirect)
    state = query(outcome.url)["state"]
    other = await s.callback(Params.of(state=state, code="c"), "b-victim")
    assert isinstance(other, ErrorPage)
    assert other.status == 403
    unknown = await s.callback(Params.of(state="nope.0", code="c"), "b-1")
    assert isinstance(unknown, ErrorPage)


async def test_upstream_errors_reach_the_client_as_oauth_errors() -> None:
    up = FakeUpstream("okta")
    s = server(up, consent=False)
    outcome = await s.authorize(authorize_params(), "b-1")
    assert isinstance(outcome, Redirect)
    state = query(outcome.url)["state"]
    denied = await s.callback(Params.of(state=state, error="access_denied", error_description="user said no"), "b-1")
    assert isinstance(denied, Redirect)
    assert query(denied.url)["error"] == "access_denied"
    assert query(denied.url)["state"] == "client-state"
    up.fail = UpstreamError("temporarily_unavailable", "okta is down")
    outcome = await s.authorize(authorize_params(), "b-1")
    assert isinstance(outcome, Redirect)
    down = await s.callback(Params.of(state=query(outcome.url)["state"], code="c"), "b-1")
    assert isinstance(down, Redirect)
    assert query(down.url)["error"] == "temporarily_unavailable"
    assert "okta is down" in query(down.url)["error_description"]


async def test_several_upstreams_are_chained_and_must_be_the_same_person() -> None:
    okta, github = FakeUpstream("okta"), FakeUpstream("github", subject="12345", claims={})
    s = server(okta, github)
    answer = await login(s, [okta, github])
    claims = claims_of(s, (await exchange(s, answer["code"]))["access_token"])
    assert claims["sub"] == "00u-alice"  # the first upstream's identity
    for name in ("okta", "github"):
        assert await s.upstream_tokens(claims["tsid"], name) is not None
    mallory = FakeUpstream("github", subject="666", email="mallory@example.com", claims={})
    s2 = server(okta, mallory, consent=False)
    outcome = await s2.authorize(authorize_params(), "b-1")
    assert isinstance(outcome, Redirect)
    outcome = await s2.callback(Params.of(state=query(outcome.url)["state"], code="c"), "b-1")
    assert isinstance(outcome, Redirect)
    outcome = await s2.callback(Params.of(state=query(outcome.url)["state"], code="c"), "b-1")
    assert isinstance(outcome, Redirect)
    assert query(outcome.url)["error"] == "access_denied"


async def test_pkce_redirect_uri_and_client_are_checked_at_the_token_endpoint() -> None:
    up = FakeUpstream("okta")
    s = server(up)
    code = (await login(s, [up]))["code"]
    with pytest.raises(OAuthError) as wrong_verifier:
        await exchange(s, code, verifier="w" * 50)
    assert wrong_verifier.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as no_verifier:
        await exchange(s, code, verifier="")
    assert no_verifier.value.error == "invalid_request"
    with pytest.raises(OAuthError) as wrong_redirect:
        await exchange(s, code, redirect_uri="http://127.0.0.1:1/other")
    assert wrong_redirect.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as wrong_resource:
        await exchange(s, code, resource="https://other.example.com/mcp")
    assert wrong_resource.value.error == "invalid_target"
    with pytest.raises(OAuthError) as other_client:
        await exchange(s, code, client_id="static-1")
    assert other_client.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as forged:
        await exchange(s, code[:-2] + "xx")
    assert forged.value.error == "invalid_grant"
    assert "access_token" in await exchange(s, code)  # the failures above did not burn the code


async def test_a_replayed_code_is_refused_and_revokes_what_it_issued() -> None:
    up = FakeUpstream("okta")
    s = server(up)
    code = (await login(s, [up]))["code"]
    first = await exchange(s, code)
    with pytest.raises(OAuthError) as replay:
        await exchange(s, code)
    assert replay.value.error == "invalid_grant"
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "dyn-1"}
    with pytest.raises(OAuthError) as revoked:
        await s.token(Params({k: [v] for k, v in refresh.items()}), None)
    assert revoked.value.error == "invalid_grant"


async def test_a_replayed_code_revokes_the_access_token_it_issued() -> None:
    up = FakeUpstream("okta")
    s = server(up)
    code = (await login(s, [up]))["code"]
    first = await exchange(s, code)
    assert not await s.token_revoked(claims_of(s, first["access_token"]))
    with pytest.raises(OAuthError):
        await exchange(s, code)
    assert await s.token_revoked(claims_of(s, first["access_token"]))


async def test_revoking_an_access_token_revokes_its_family_only_for_its_own_client() -> None:
    up = FakeUpstream("okta")
    s = server(up, clients=Clients(DYNAMIC, STATIC))
    tokens = await exchange(s, (await login(s, [up]))["code"])
    other = await exchange(s, (await login(s, [up]))["code"])  # a second login: another family
    claims = claims_of(s, tokens["access_token"])
    await s.revoke(Params.of(token=tokens["access_token"], client_id="static-1"), None)  # not its client: ignored
    assert not await s.token_revoked(claims)
    await s.revoke(Params.of(token=tokens["access_token"], client_id="dyn-1"), None)
    assert await s.token_revoked(claims)
    assert not await s.token_revoked(claims_of(s, other["access_token"]))
    with pytest.raises(OAuthError) as refresh:  # the refresh token of the same login went with it
        await s.token(Params.of(grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                                client_id="dyn-1"), None)  # fmt: skip
    assert refresh.value.error == "invalid_grant"


async def test_a_revoked_login_cannot_be_exchanged_and_its_exchanged_tokens_go_with_it() -> None:
    import hashlib

    from hivegate.authserver.grants.token_exchange import ACCESS_TOKEN_TYPE
    from hivegate.authserver.settings import TOKEN_EXCHANGE_GRANT

    sts = Client("sts-1", (), "static", token_endpoint_auth_method="client_secret_basic",
                 secret_hash=hashlib.sha256(b"s3cret").hexdigest(), grant_types=(TOKEN_EXCHANGE_GRANT,))  # fmt: skip
    up = FakeUpstream("okta")
    s = server(up, clients=Clients(DYNAMIC, sts))
    tokens = await exchange(s, (await login(s, [up]))["code"])
    form = Params.of(grant_type=TOKEN_EXCHANGE_GRANT, subject_token=tokens["access_token"],
                     subject_token_type=ACCESS_TOKEN_TYPE, audience=RESOURCE)  # fmt: skip
    exchanged = await s.token(form, ("sts-1", "s3cret"))
    assert not await s.token_revoked(claims_of(s, exchanged["access_token"]))
    await s.revoke(Params.of(token=tokens["refresh_token"], client_id="dyn-1"), None)
    assert await s.token_revoked(claims_of(s, exchanged["access_token"]))
    with pytest.raises(OAuthError) as again:
        await s.token(form, ("sts-1", "s3cret"))
    assert again.value.error == "invalid_grant"
    assert "revoked" in again.value.description


def sts_client() -> Client:
    import hashlib

    from hivegate.authserver.settings import TOKEN_EXCHANGE_GRANT

    return Client("sts-1", (), "static", token_endpoint_auth_method="client_secret_basic",
                  secret_hash=hashlib.sha256(b"s3cret").hexdigest(), grant_types=(TOKEN_EXCHANGE_GRANT,))  # fmt: skip


def exchange_form(subject_token: str) -> Params:
    from hivegate.authserver.grants.token_exchange import ACCESS_TOKEN_TYPE
    from hivegate.authserver.settings import TOKEN_EXCHANGE_GRANT

    return Params.of(grant_type=TOKEN_EXCHANGE_GRANT, subject_token=subject_token,
                     subject_token_type=ACCESS_TOKEN_TYPE, audience=RESOURCE)  # fmt: skip


async def test_revoking_an_exchanged_token_revokes_that_token_alone_and_only_for_the_exchanging_client() -> None:
    up = FakeUpstream("okta")
    s = server(up, clients=Clients(DYNAMIC, sts_client()))
    tokens = await exchange(s, (await login(s, [up]))["code"])
    exchanged = await s.token(exchange_form(tokens["access_token"]), ("sts-1", "s3cret"))
    claims = claims_of(s, exchanged["access_token"])
    await s.revoke(Params.of(token=exchanged["access_token"], client_id="dyn-1"), None)  # not its client: ignored
    assert not await s.token_revoked(claims)
    await s.revoke(Params.of(token=exchanged["access_token"]), ("sts-1", "s3cret"))
    assert await s.token_revoked(claims)
    # the login it was exchanged from lives on: its access token, its refresh token, new exchanges
    assert not await s.token_revoked(claims_of(s, tokens["access_token"]))
    again = await s.token(exchange_form(tokens["access_token"]), ("sts-1", "s3cret"))
    assert not await s.token_revoked(claims_of(s, again["access_token"]))
    refreshed = await s.token(Params.of(grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                                        client_id="dyn-1"), None)  # fmt: skip
    assert not await s.token_revoked(claims_of(s, refreshed["access_token"]))


async def test_revoking_a_refresh_token_of_another_client_changes_nothing() -> None:
    up = FakeUpstream("okta")
    s = server(up, clients=Clients(DYNAMIC, STATIC))
    tokens = await exchange(s, (await login(s, [up]))["code"])
    await s.revoke(Params.of(token=tokens["refresh_token"], client_id="static-1"), None)  # answered, ignored
    assert not await s.token_revoked(claims_of(s, tokens["access_token"]))
    refreshed = await s.token(Params.of(grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                                        client_id="dyn-1"), None)  # fmt: skip
    assert "access_token" in refreshed


async def test_revocation_logs_name_the_client_and_subject_but_never_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    up = FakeUpstream("okta")
    s = server(up)
    code = (await login(s, [up]))["code"]
    tokens = await exchange(s, code)
    with pytest.raises(OAuthError):
        await exchange(s, code)  # replayed: the family is revoked
    await s.revoke(Params.of(token=tokens["access_token"], client_id="dyn-1"), None)
    lines = [r.getMessage() for r in caplog.records if "revoking" in r.getMessage()]
    assert len(lines) == 2
    for line in lines:
        assert "'dyn-1'" in line
        assert "'00u-alice'" in line
        assert not any(secret in line for secret in (code, tokens["access_token"], tokens["refresh_token"]))


async def test_refresh_rotates_reuse_revokes_the_family_but_concurrent_refreshes_succeed() -> None:
    up = FakeUpstream("okta")
    clock = [1_000_000.0]
    s = server(up)
    s._clock = lambda: clock[0]
    tokens = await exchange(s, (await login(s, [up]))["code"])

    def refresh_form(token: str, **over: str) -> Params:
        return Params({k: [v] for k, v in {"grant_type": "refresh_token", "refresh_token": token,
                                           "client_id": "dyn-1", **over}.items()})  # fmt: skip

    second = await s.token(refresh_form(tokens["refresh_token"]), None)
    assert second["refresh_token"] != tokens["refresh_token"]
    assert claims_of(s, second["access_token"])["sub"] == "00u-alice"
    concurrent = await s.token(refresh_form(tokens["refresh_token"]), None)  # within the grace window
    assert "access_token" in concurrent
    narrowed = await s.token(refresh_form(second["refresh_token"], scope="email"), None)
    assert narrowed["scope"] == "email"
    with pytest.raises(OAuthError) as widened:
        await s.token(refresh_form(narrowed["refresh_token"], scope="email profile"), None)
    assert widened.value.error == "invalid_scope"
    clock[0] += REFRESH_GRACE + 1
    with pytest.raises(OAuthError) as reuse:
        await s.token(refresh_form(tokens["refresh_token"]), None)
    assert reuse.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as family:
        await s.token(refresh_form(narrowed["refresh_token"]), None)  # the whole family is revoked
    assert family.value.error == "invalid_grant"


async def test_client_authentication_rules() -> None:
    import hashlib

    secret_hash = hashlib.sha256(b"s3cret").hexdigest()
    confidential = Client("conf-1", (APP,), "dynamic", token_endpoint_auth_method="client_secret_basic",
                          secret_hash=secret_hash)  # fmt: skip
    s = server(clients=Clients(DYNAMIC, confidential))
    base = {"grant_type": "refresh_token", "refresh_token": "hgr_x.y"}
    cases: list[tuple[dict[str, str], tuple[str, str] | None, str]] = [
        ({}, None, "invalid_client"),
        ({"client_id": "nobody"}, None, "invalid_client"),
        ({"client_id": "dyn-1", "client_secret": "x"}, None, "invalid_client"),
        ({}, ("conf-1", "wrong"), "invalid_client"),
        ({"client_id": "conf-1", "client_secret": "s3cret"}, None, "invalid_client"),  # must use basic
        ({"client_id": "dyn-1"}, ("conf-1", "s3cret"), "invalid_request"),
        ({}, ("conf-1", "s3cret"), "invalid_grant"),  # authenticated; the token itself is bad
    ]
    for extra, basic, error in cases:
        with pytest.raises(OAuthError) as exc:
            await s.token(Params({k: [v] for k, v in {**base, **extra}.items()}), basic)
        assert exc.value.error == error, (extra, basic)
    with pytest.raises(OAuthError) as unsupported:
        await s.token(Params.of(grant_type="password", client_id="dyn-1"), None)
    assert unsupported.value.error == "unsupported_grant_type"


async def test_revocation_revokes_the_refresh_family_and_ignores_unknown_tokens() -> None:
    up = FakeUpstream("okta")
    s = server(up)
    tokens = await exchange(s, (await login(s, [up]))["code"])
    await s.revoke(Params.of(token="not-ours", client_id="dyn-1"), None)
    await s.revoke(Params.of(token=tokens["access_token"], client_id="dyn-1"), None)
    await s.revoke(Params.of(token=tokens["refresh_token"], client_id="dyn-1"), None)
    with pytest.raises(OAuthError):
        await s.token(Params.of(grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                                client_id="dyn-1"), None)  # fmt: skip


async def test_expired_upstream_tokens_are_refreshed_on_use() -> None:
    up = FakeUpstream("okta")
    s = server(up)
    tokens = await exchange(s, (await login(s, [up]))["code"])
    tsid = claims_of(s, tokens["access_token"])["tsid"]
    fresh = await s.upstream_tokens(tsid, "okta")  # expires within 30 s: refreshed
    assert fresh is not None
    assert fresh.access_token == "okta-access-1"
    again = await s.upstream_tokens(tsid, "okta")
    assert again is not None
    assert again.access_token == "okta-access-1"
    assert up.refreshed == 1
    assert await s.upstream_tokens(tsid, "github") is None
    assert await s.upstream_tokens("no-session", "okta") is None


def test_metadata_advertises_exactly_what_is_supported() -> None:
    doc = server().metadata()
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["authorization_endpoint"] == f"{ISSUER}/oauth/authorize"
    assert "id_token_signing_alg_values_supported" in server().metadata(openid=True)


async def test_an_unreachable_upstream_is_reported_to_the_client() -> None:
    class Down(FakeUpstream):
        async def authorization_url(self, *, state: str, code_challenge: str, nonce: str, redirect_uri: str) -> str:
            raise UpstreamError("temporarily_unavailable", "the upstream's discovery document is unavailable")

    s = server(Down("okta"), consent=False)
    outcome = await s.authorize(authorize_params(), "b-1")
    assert isinstance(outcome, Redirect)
    answer = query(outcome.url)
    assert answer["error"] == "temporarily_unavailable"
    assert answer["state"] == "client-state"
    assert "okta: the upstream's discovery document is unavailable" in answer["error_description"]


async def test_a_callback_from_another_browser_does_not_spoil_the_login() -> None:
    up = FakeUpstream("okta")
    s = server(up, consent=False)
    outcome = await s.authorize(authorize_params(), "b-1")
    assert isinstance(outcome, Redirect)
    state = query(outcome.url)["state"]
    assert isinstance(await s.callback(Params.of(state=state, code="c"), "b-attacker"), ErrorPage)
    finished = await s.callback(Params.of(state=state, code="c"), "b-1")
    assert isinstance(finished, Redirect)
    assert "code" in query(finished.url)
