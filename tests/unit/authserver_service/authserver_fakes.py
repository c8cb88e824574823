"""In-memory parts for driving `AuthorizationServer` through whole logins: fake upstreams, one static client, and
helpers for the authorization, callback and token requests. No sockets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from hivegate.authserver.clients import Client, ClientStore
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.service import AuthorizationServer, Params, Redirect
from hivegate.authserver.settings import AuthServerConfig, IdentityCheck, Lifespans, UpstreamConfig
from hivegate.authserver.upstream.base import UpstreamIdentity, UpstreamTokens
from hivegate.storage.base import KeyValueStore
from hivegate.storage.memory import MemoryStore

ISSUER = "https://mcp.example.com"
RESOURCE = "https://mcp.example.com/mcp"
APP = "http://127.0.0.1:33418/callback"
CLIENT = "static-1"
# RFC 7636 appendix B: this verifier's S256 challenge
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@dataclass
class Upstream:
    """A fake upstream whose every login yields the same identity."""

    name: str
    email: str | None = "alice@example.com"
    subject: str = "user-1"
    claims: dict[str, Any] = field(default_factory=dict)
    identity_check: IdentityCheck = "email"

    async def authorization_url(self, *, state: str, code_challenge: str, nonce: str, redirect_uri: str) -> str:
        return f"https://{self.name}.example/authorize?state={state}"

    async def exchange_code(
        self, code: str, *, code_verifier: str, nonce: str, redirect_uri: str
    ) -> tuple[UpstreamTokens, UpstreamIdentity]:
        claims = {"sub": self.subject, **({"email": self.email} if self.email else {}), **self.claims}
        return UpstreamTokens(f"{self.name}-access"), UpstreamIdentity(self.subject, None, self.email, claims)

    async def refresh(self, refresh_token: str) -> tuple[UpstreamTokens, UpstreamIdentity | None]:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


class StaticClients:
    """One static (pre-registered) client, so logins skip the consent page, and any `others`."""

    def __init__(self, *others: Client) -> None:
        self._clients = {c.client_id: c for c in (Client(CLIENT, (APP,), "static"), *others)}

    async def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    async def register(self, metadata: Any, *, remote: str) -> tuple[Client, dict[str, Any]]:
        raise NotImplementedError


def server(
    *ups: Upstream,
    keys: SigningKeys | None = None,
    hmac_keys: HMACKeys | None = None,
    store: KeyValueStore | None = None,
    lifespans: Lifespans | None = None,
    clock: Callable[[], float] | None = None,
    clients: ClientStore | None = None,
    name: str = "",
) -> AuthorizationServer:
    ups = ups or (Upstream("okta"),)
    configs = tuple(
        UpstreamConfig(u.name, "oidc", "cid", issuer_url="https://idp.example", identity_check=u.identity_check)
        for u in ups
    )
    cfg = AuthServerConfig(issuer=ISSUER, upstreams=configs, lifespans=lifespans or Lifespans())
    return AuthorizationServer(
        cfg,
        keys=keys or SigningKeys.from_pems([]),
        hmac_keys=hmac_keys or HMACKeys.from_config([b"k" * 32]),
        store=store if store is not None else MemoryStore(),  # an empty MemoryStore is falsy
        clients=clients or StaticClients(),
        upstreams=ups,
        audiences=[RESOURCE],
        **({"clock": clock} if clock is not None else {}),
        name=name,
    )


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def form(**values: str) -> Params:
    return Params({k: [v] for k, v in values.items()})


async def login(s: AuthorizationServer, legs: int = 1) -> dict[str, str]:
    """The static client's login through `legs` upstreams: the query of the client's final redirect (a `code`, or
    an `error` as soon as one leg fails)."""
    outcome = await s.authorize(
        form(
            response_type="code",
            client_id=CLIENT,
            redirect_uri=APP,
            state="st",
            code_challenge=CHALLENGE,
            code_challenge_method="S256",
            scope="openid",
            resource=RESOURCE,
        ),
        "b-1",
    )
    for _ in range(legs):
        assert isinstance(outcome, Redirect)
        answer = query(outcome.url)
        if "error" in answer:
            return answer
        outcome = await s.callback(form(state=answer["state"], code="c"), "b-1")
    assert isinstance(outcome, Redirect)
    assert outcome.url.startswith(APP + "?")
    return query(outcome.url)


async def redeem(s: AuthorizationServer, code: str) -> dict[str, Any]:
    return await s.token(
        form(grant_type="authorization_code", code=code, client_id=CLIENT, redirect_uri=APP, code_verifier=VERIFIER),
        None,
    )


async def refresh(s: AuthorizationServer, refresh_token: str) -> dict[str, Any]:
    return await s.token(form(grant_type="refresh_token", refresh_token=refresh_token, client_id=CLIENT), None)


def claims_of(jwks: dict[str, Any], token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, KeySet.import_key_set(jwks)).claims)  # type: ignore[arg-type]
