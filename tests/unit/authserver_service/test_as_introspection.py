"""RFC 7662 token introspection at the embedded authorization server: what is active, who may ask, and how long a
cached answer can outlive a revocation."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from authserver_fakes import APP, CHALLENGE, CLIENT, ISSUER, RESOURCE, VERIFIER, form, query, server
from joserfc import jwt
from joserfc.jwk import RSAKey

from hivegate.authserver.clients import Client
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.introspection import TokenIntrospection
from hivegate.authserver.keys import SigningKeys
from hivegate.authserver.revocation import RECHECK, Revocations
from hivegate.authserver.service import AuthorizationServer, Consent, Params, Redirect
from hivegate.authserver.settings import TOKEN_EXCHANGE_GRANT, Lifespans
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

SECRET = "a-long-client-secret-value"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


def confidential(
    client_id: str, source: Any, grants: tuple[str, ...] = ("authorization_code", "refresh_token")
) -> Client:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    return Client(client_id, (APP,), source, token_endpoint_auth_method="client_secret_basic", secret_hash=digest,
                  grant_types=grants)  # fmt: skip


class Clients:
    """The fakes' public static client, a static resource server (`backend`), a static confidential app (`app-c`)
    and a confidential client registered at run time (`dyn-1`)."""

    def __init__(self) -> None:
        self.all = {
            CLIENT: Client(CLIENT, (APP,), "static"),
            "backend": confidential("backend", "static", (TOKEN_EXCHANGE_GRANT,)),
            "app-c": confidential("app-c", "static"),
            "dyn-1": confidential("dyn-1", "dynamic"),
        }

    async def get(self, client_id: str) -> Client | None:
        return self.all.get(client_id)

    async def register(self, metadata: Any, *, remote: str) -> tuple[Client, dict[str, Any]]:
        raise NotImplementedError


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, namespace: str, key: str) -> dict[str, Any] | None:  # type: ignore[override]
        self.reads += 1
        return await super().get(namespace, key)


def make(**kwargs: Any) -> AuthorizationServer:
    return server(clients=Clients(), **kwargs)


async def tokens_of(s: AuthorizationServer, client_id: str) -> dict[str, Any]:
    """A whole login of `client_id` (approving the consent page when shown) and the token response."""
    start = form(response_type="code", client_id=client_id, redirect_uri=APP, code_challenge=CHALLENGE,
                 code_challenge_method="S256", scope="openid", resource=RESOURCE)  # fmt: skip
    outcome = await s.authorize(start, "b-1")
    if isinstance(outcome, Consent):
        outcome = await s.consent(form(login=outcome.login, csrf=outcome.csrf, decision="allow"), "b-1")
    assert isinstance(outcome, Redirect)
    done = await s.callback(form(state=query(outcome.url)["state"], code="c"), "b-1")
    assert isinstance(done, Redirect)
    redeem = form(grant_type="authorization_code", code=query(done.url)["code"], client_id=client_id,
                  redirect_uri=APP, code_verifier=VERIFIER)  # fmt: skip
    return await s.token(redeem, None if client_id == CLIENT else (client_id, SECRET))


async def ask(s: AuthorizationServer, token: str, client_id: str = "backend", **extra: str) -> dict[str, Any]:
    return await s.introspect(form(token=token, **extra), (client_id, SECRET))


async def test_a_fresh_access_token_is_active_with_its_claims() -> None:
    s = make()
    tokens = await tokens_of(s, CLIENT)
    answer = await ask(s, tokens["access_token"])
    assert answer["active"] is True
    assert answer["token_type"] == "Bearer"
    assert answer["iss"] == ISSUER
    assert answer["aud"] == RESOURCE
    assert answer["sub"] == "user-1"
    assert answer["client_id"] == CLIENT
    assert answer["scope"] == "openid"
    assert answer["exp"] - answer["iat"] == int(Lifespans().access)
    assert answer["nbf"] == answer["iat"]
    assert len(answer["jti"]) >= 16
    assert "tfam" not in answer
    again = await ask(s, tokens["access_token"], token_type_hint="refresh_token")  # a wrong hint is only an order
    assert again == answer


async def test_revoked_and_expired_tokens_are_inactive_at_once_even_when_cached() -> None:
    now = [time.time()]
    s = make(clock=lambda: now[0])
    first, second = await tokens_of(s, CLIENT), await tokens_of(s, CLIENT)
    assert (await ask(s, first["access_token"]))["active"] is True  # cached now
    await s.revoke(form(token=first["access_token"], client_id=CLIENT), None)
    assert await ask(s, first["access_token"]) == {"active": False}
    assert (await ask(s, second["access_token"]))["active"] is True  # another login: another family
    now[0] += Lifespans().access
    assert await ask(s, second["access_token"]) == {"active": False}


async def test_a_refresh_token_reuse_makes_the_family_inactive() -> None:
    s = make()
    tokens = await tokens_of(s, "app-c")
    secret = ("app-c", SECRET)
    rotated = await s.token(form(grant_type="refresh_token", refresh_token=tokens["refresh_token"]), secret)
    assert (await ask(s, rotated["access_token"]))["active"] is True
    assert (await ask(s, rotated["refresh_token"], "app-c"))["active"] is True
    assert await ask(s, tokens["refresh_token"], "app-c") == {"active": False}  # rotated: superseded
    s._clock = lambda: time.time() + 60  # past the grace window: the reuse is an attack
    with pytest.raises(OAuthError, match="already used"):
        await s.token(form(grant_type="refresh_token", refresh_token=tokens["refresh_token"]), secret)
    for token, asker in ((tokens["access_token"], "backend"), (rotated["access_token"], "backend"),
                         (rotated["refresh_token"], "app-c")):  # fmt: skip
        assert await ask(s, token, asker) == {"active": False}


async def test_a_refresh_token_is_active_only_for_its_own_client() -> None:
    s = make()
    tokens = await tokens_of(s, "app-c")
    answer = await ask(s, tokens["refresh_token"], "app-c", token_type_hint="access_token")
    assert answer["active"] is True
    assert answer["token_type"] == "refresh_token"  # never "Bearer": a resource server must not take it as one
    assert (answer["client_id"], answer["sub"], answer["aud"], answer["scope"]) == (
        "app-c",
        "user-1",
        RESOURCE,
        "openid",
    )
    assert answer["exp"] - answer["iat"] == int(Lifespans().refresh)
    assert await ask(s, tokens["refresh_token"], "backend") == {"active": False}
    await s.revoke(form(token=tokens["refresh_token"]), ("app-c", SECRET))
    assert await ask(s, tokens["refresh_token"], "app-c") == {"active": False}


async def test_a_client_registered_at_run_time_sees_only_its_own_tokens() -> None:
    s = make()
    own, other = await tokens_of(s, "dyn-1"), await tokens_of(s, CLIENT)
    assert (await ask(s, own["access_token"], "dyn-1"))["active"] is True
    assert await ask(s, other["access_token"], "dyn-1") == {"active": False}
    assert (await ask(s, other["access_token"], "app-c"))["active"] is True  # configured by the administrator


async def test_an_exchanged_token_is_active_with_its_actor_and_revoked_alone() -> None:
    s = make()
    subject = await tokens_of(s, CLIENT)
    exchange = form(grant_type=TOKEN_EXCHANGE_GRANT, subject_token=subject["access_token"], subject_token_type=ACCESS)
    exchanged = await s.token(exchange, ("backend", SECRET))
    answer = await ask(s, exchanged["access_token"])
    assert answer["active"] is True
    assert answer["act"] == {"sub": "backend"}
    assert answer["client_id"] == "backend"
    await s.revoke(form(token=exchanged["access_token"]), ("backend", SECRET))
    assert await ask(s, exchanged["access_token"]) == {"active": False}
    assert (await ask(s, subject["access_token"]))["active"] is True


async def test_foreign_forged_and_garbage_tokens_are_inactive_without_a_store_read() -> None:
    store = CountingStore()
    s = make(store=store)
    genuine = (await tokens_of(s, CLIENT))["access_token"]
    key = RSAKey.generate_key(2048, parameters={"kid": "other", "alg": "RS256"})
    now = int(time.time())
    claims = {"iss": "https://idp.example", "sub": "user-1", "aud": RESOURCE, "exp": now + 600, "iat": now}
    foreign = jwt.encode({"alg": "RS256", "kid": "other"}, claims, key)
    forged = jwt.encode({"alg": "RS256", "kid": "other"}, {**claims, "iss": ISSUER}, key)
    header, body, signature = genuine.split(".")
    tampered = f"{header}.{body}.{signature[:-6]}AAAAAA"
    reads = store.reads
    for token in (foreign, forged, tampered, "garbage", "a.b.c", "hgr_nope.nope", genuine[:-1]):
        assert await ask(s, token) == {"active": False}, token
    assert store.reads == reads


async def test_a_cached_answer_is_checked_against_revocations_by_another_replica_within_recheck() -> None:
    store, keys, mono = MemoryStore(), SigningKeys.from_pems([]), [0.0]
    here, there = make(store=store, keys=keys), make(store=store, keys=keys)  # two replicas: one store, one key
    tokens = await tokens_of(there, CLIENT)
    revocations = Revocations(store, ttl=3600, clock=lambda: mono[0])
    introspection = TokenIntrospection(here._ctx, revocations=revocations, exchange=here._exchange)
    backend = await Clients().get("backend")
    assert backend is not None
    verified = []
    own_claims = here._exchange.own_claims

    async def counted(token: str) -> dict[str, Any] | None:
        verified.append(token)
        return await own_claims(token)

    here._exchange.own_claims = counted  # type: ignore[method-assign]
    assert (await introspection.introspect(backend, tokens["access_token"]))["active"] is True
    await there.revoke(form(token=tokens["access_token"], client_id=CLIENT), None)
    mono[0] += RECHECK / 2
    assert (await introspection.introspect(backend, tokens["access_token"]))["active"] is True  # cached, remembered
    assert len(verified) == 1  # the signature was checked once
    mono[0] += RECHECK
    assert await introspection.introspect(backend, tokens["access_token"]) == {"active": False}


async def test_who_may_ask_and_malformed_requests() -> None:
    s = make()
    token = (await tokens_of(s, CLIENT))["access_token"]
    with pytest.raises(OAuthError) as public:
        await s.introspect(form(token=token, client_id=CLIENT), None)
    assert (public.value.error, public.value.status) == ("invalid_client", 401)
    with pytest.raises(OAuthError) as wrong:
        await s.introspect(form(token=token), ("backend", "not-the-secret"))
    assert (wrong.value.error, wrong.value.status) == ("invalid_client", 401)
    with pytest.raises(OAuthError) as anonymous:
        await s.introspect(form(token=token), None)
    assert (anonymous.value.error, anonymous.value.status) == ("invalid_client", 401)
    with pytest.raises(OAuthError) as missing:
        await s.introspect(form(), ("backend", SECRET))
    assert (missing.value.error, missing.value.status) == ("invalid_request", 400)
    with pytest.raises(OAuthError) as repeated:
        await s.introspect(Params({"token": [token, token]}), ("backend", SECRET))
    assert repeated.value.error == "invalid_request"


def test_metadata_advertises_the_introspection_endpoint() -> None:
    doc = make().metadata()
    assert doc["introspection_endpoint"] == f"{ISSUER}/oauth/introspect"
    assert doc["introspection_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
